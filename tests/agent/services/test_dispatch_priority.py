"""A run's next turn goes ahead of new tickets' first turns on the real Redis broker."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from agent.services.intake import agent_run_create_for_new_ticket
from agent.services.runs import agent_run_dispatch
from agentconsole.celery import app
from tests.factories import AgentRunFactory, TicketFactory

pytestmark = pytest.mark.django_db


def _next_run_id() -> int:
    """The run id of the message a worker would take next (kombu reads the highest priority first)."""
    with app.connection_for_read() as connection:
        message = connection.default_channel.basic_get(settings.CELERY_TASK_DEFAULT_QUEUE)
        assert message is not None, "no message queued"
        message.ack()
        args, _, _ = json.loads(message.body)
        return args[0]


def test_it_sends_the_next_turn_of_a_run_ahead_of_new_tickets(broker, django_capture_on_commit_callbacks) -> None:
    in_progress = AgentRunFactory(status="running", turns=2)
    with django_capture_on_commit_callbacks(execute=True):
        new = [agent_run_create_for_new_ticket(ticket=TicketFactory()) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        agent_run_dispatch(run_id=in_progress.pk)  # queued after the new tickets

    assert _next_run_id() == in_progress.pk
    assert [_next_run_id() for _ in new] == [run.pk for run in new]  # then the new ones, oldest first
