"""The advance task's error paths: a database connection that broke under it is dropped before anything touches
the database again, and the turn is tried again on a fresh one."""

from __future__ import annotations

import psycopg
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


def _fail_the_turn(run: AgentRun, *, taken_over: bool):
    """A bug in the middle of the turn (just before its steps are written); with `taken_over`, another worker
    claimed the run first, as after this worker's lease ran out during a slow call."""
    armed = [True]

    def wrapper(execute, sql, params, many, context):
        if armed[0] and "agent_step" in sql and sql.lstrip().upper().startswith(("INSERT", "WITH")):
            armed[0] = False
            if taken_over:
                db = connection.settings_dict
                dsn = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
                with psycopg.connect(**dsn, password=db["PASSWORD"] or None, autocommit=True) as other:
                    other.execute(
                        "UPDATE agent_agentrun SET lease_token = 'other-worker', "
                        "lease_expires_at = now() + interval '1 hour' WHERE id = %s",
                        [run.pk],
                    )
            raise RuntimeError("a bug in the turn")
        return execute(sql, params, many, context)

    return wrapper


def test_it_escalates_a_run_whose_turn_hit_an_unexpected_error(settings, caplog) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _run()

    with connection.execute_wrapper(_fail_the_turn(run, taken_over=False)):
        result = agent_run_advance_task.apply(args=(run.pk, ""))

    assert result.successful(), result.traceback
    assert "a bug in the turn" in caplog.text  # the traceback is logged
    run.refresh_from_db()
    assert (run.status, run.lease_token) == ("escalated", "")


def test_it_leaves_a_run_another_worker_took_over_when_its_turn_hit_an_unexpected_error(settings, caplog) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _run()

    with connection.execute_wrapper(_fail_the_turn(run, taken_over=True)):
        result = agent_run_advance_task.apply(args=(run.pk, ""))

    assert result.successful(), result.traceback
    assert "another worker holds it" in caplog.text
    run.refresh_from_db()
    assert run.status != "escalated"
    assert run.lease_token == "other-worker"  # the other worker's lease is untouched
