"""A double click on "Replay past tickets" sends two requests at once: they make one replay, not two."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from agent.models import Replay
from agent.replay import replay_start
from agent.versions import workflow_version_ensure
from tests.factories import AgentRunFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_makes_one_replay_of_two_simultaneous_starts(broker) -> None:
    workflow = WorkflowFactory()
    workflow_version_ensure(workflow=workflow)
    AgentRunFactory(workflow=workflow, status="completed", trigger="ticket_created")
    admin = UserFactory(groups=["admins"])
    together = threading.Barrier(2)
    started: list[int] = []

    def start() -> None:
        try:
            together.wait()
            started.append(replay_start(workflow=workflow, user=admin).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 2 and len(set(started)) == 1
    assert Replay.objects.count() == 1
