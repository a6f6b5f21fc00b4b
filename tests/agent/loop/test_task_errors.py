"""The advance task's error paths: a database connection that broke under it is dropped before anything touches
the database again, and the turn is tried again on a fresh one."""

from __future__ import annotations

import pytest
from django.db import connection

from agent.models import AgentRun
from agent.tasks import agent_run_advance_task
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _run() -> AgentRun:
    workflow = WorkflowFactory(phase="shadow", playbook=[])  # no playbook: the offline engine finishes at once
    return AgentRunFactory(
        ticket=TicketFactory(tenant_link__tenant_id="acme"), workflow=workflow, phase="shadow", trigger="ticket_created"
    )


def test_it_reconnects_and_finishes_the_turn_when_the_connection_broke(settings, caplog) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _run()
    armed = [True]

    def cut_before_the_claim(execute, sql, params, many, context):
        # The connection dies mid-task (a failover, a network cut), just as the run is about to be claimed.
        if armed[0] and "UPDATE" in sql and "lease_token" in sql:  # the claim (in a WITH on PostgreSQL)
            armed[0] = False
            context["connection"].connection.close()
        return execute(sql, params, many, context)

    # Eager apply runs the retry at once: the first attempt fails on the dead connection, the second succeeds.
    with connection.execute_wrapper(cut_before_the_claim):
        result = agent_run_advance_task.apply(args=(run.pk, ""))

    assert result.successful(), result.traceback
    assert "database error, retrying the turn" in caplog.text  # the first attempt did meet the dead connection
    run.refresh_from_db()
    assert run.status in {"completed", "escalated"}
    assert run.lease_token == ""
