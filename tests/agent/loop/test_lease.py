from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from agent.loop import Outcome, run_advance
from agent.services.leases import agent_run_claim
from tests.bedrock import converse_reply
from tests.factories import AgentRunFactory, TicketFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_drops_a_turn_when_another_worker_took_the_run_meanwhile(bedrock, settings) -> None:
    settings.AGENT_LEASE_SECONDS = 1
    run = AgentRunFactory(ticket=TicketFactory(tenant_link__tenant_id="acme"), phase="triage", status="running")
    bedrock.answer(200, converse_reply({"text": "Slow answer."}, stop="end_turn"), delay=2.0)
    taken: list[object] = []

    def other_worker() -> None:
        time.sleep(1.3)  # the first worker's lease has run out while it waits on the model
        taken.append(agent_run_claim(run_id=run.pk, lease_seconds=60))
        connection.close()

    thief = threading.Thread(target=other_worker)
    thief.start()
    outcome = run_advance(run_id=run.pk)
    thief.join()

    assert taken[0] is not None
    assert outcome == Outcome.LOST
    run.refresh_from_db()
    assert (run.status, run.turns, run.steps.count()) == ("running", 0, 0)
    assert run.lease_token == taken[0].lease_token  # the new holder keeps the run
