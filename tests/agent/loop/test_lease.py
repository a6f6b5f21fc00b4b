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


def _other_connection():
    import psycopg

    db = connection.settings_dict
    dsn = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
    return psycopg.connect(**dsn, password=db["PASSWORD"] or None, autocommit=True)


def _episode_run(settings, *, approved: bool):
    """A triage run of the offline engine's one-call playbook; approved: its proposal approved, the run waiting to
    go on."""
    from agent.models import ProposedAction
    from agent.services.actions import proposed_action_approve
    from tests.factories import UserFactory, WorkflowFactory

    settings.AGENT_LLM_PROVIDER = "offline"
    workflow = WorkflowFactory(phase="triage", playbook=[{"tool": "reply_to_customer", "args": {"body": "Done."}}])
    ticket = TicketFactory(source="local", tenant_link__tenant_id="acme", tags=["episode"])
    run = AgentRunFactory(ticket=ticket, workflow=workflow, phase="triage", trigger="manual")
    if approved:
        assert run_advance(run_id=run.pk) == Outcome.PAUSED
        proposed_action_approve(action=ProposedAction.objects.get(run=run), user=UserFactory(groups=["reviewers"]))
    return run


def _advance_losing_the_lease_before(run, statement) -> list[bool]:
    """Advance the run; just before its first statement that `statement(sql)` picks, another worker takes the run's
    lease (on a connection of its own). Returns [True] once that happened."""
    taken: list[bool] = []

    def take_over(execute, sql, params, many, context):
        if statement(sql) and not taken:
            with _other_connection() as other:
                other.execute(
                    "UPDATE agent_agentrun SET lease_token = 'another-worker', "
                    "lease_expires_at = now() + interval '1 hour' WHERE id = %s",
                    [run.pk],
                )
            taken.append(True)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(take_over):
        assert run_advance(run_id=run.pk) == Outcome.LOST
    return taken


def test_it_writes_no_observation_and_no_resume_once_another_worker_took_the_run_after_the_call(settings) -> None:
    """The observation of an approved call, the lease's renewal and the run's move back to running are one
    statement, conditional on the lease: taken by another worker while the call ran, none of it is written. What
    the call did is still recorded on its action (the worker knows it; the new holder reads it)."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement observation is PostgreSQL's")
    from agent.models import ProposedAction
    from audit.models import AuditEvent

    run = _episode_run(settings, approved=True)
    taken = _advance_losing_the_lease_before(run, lambda sql: 'INSERT INTO "agent_step"' in sql and "guard AS" in sql)

    run.refresh_from_db()
    assert taken and (run.status, run.lease_token) == ("awaiting_approval", "another-worker")
    assert not run.steps.filter(kind="observation").exists()
    moves = AuditEvent.objects.filter(object_type="agent.agentrun", object_id=str(run.pk), verb="run.status_changed")
    assert [e.payload["to"] for e in moves.order_by("id")] == ["running", "awaiting_approval"]
    assert ProposedAction.objects.get(run=run).status == "executed"


def test_it_proposes_nothing_once_another_worker_took_the_run_after_the_turn(settings) -> None:
    """A proposal is inserted only while the advance's worker holds the lease (the same statement): taken by
    another worker between the turn and the proposal, the run gets no proposal and does not move to waiting."""
    if connection.vendor != "postgresql":
        pytest.skip("the proposal's lease condition is PostgreSQL's")
    from agent.models import ProposedAction

    run = _episode_run(settings, approved=False)
    taken = _advance_losing_the_lease_before(run, lambda sql: 'INSERT INTO "agent_proposedaction"' in sql)

    run.refresh_from_db()
    assert taken and (run.status, run.lease_token) == ("running", "another-worker")
    assert not ProposedAction.objects.filter(run=run).exists()


def test_it_neither_records_the_answer_nor_completes_once_another_worker_took_the_run(settings) -> None:
    """The final turn and the run's completion are one statement, conditional on the lease: taken by another worker
    after the model answered, the run is neither completed nor given the answer's step, and keeps its new holder."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement finish is PostgreSQL's")
    run = _episode_run(settings, approved=True)
    taken = _advance_losing_the_lease_before(run, lambda sql: "turns = turns + 1" in sql)

    run.refresh_from_db()
    assert taken and (run.status, run.turns, run.lease_token) == ("running", 1, "another-worker")
    assert not run.steps.filter(kind="final").exists()


# Every status change an advance makes is conditional on its lease: taken by another worker just before it, the run
# keeps its status, its audit log and its new holder, and the advance stops quietly (Outcome.LOST).

_STATUS_CHANGE = 'UPDATE "agent_agentrun" SET "status"'  # the one-statement move (runs._transition_in_one)


def _run_locked(sql: str) -> bool:
    """The run's row locked, to decide a move on it."""
    return sql.startswith('SELECT "agent_agentrun"."id"') and sql.endswith("FOR UPDATE")


def _moves(run) -> list[str]:
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(object_type="agent.agentrun", object_id=str(run.pk), verb="run.status_changed")
    return [e.payload["to"] for e in events.order_by("id")]


def _held_by_the_other_worker(run) -> bool:
    from datetime import timedelta

    from django.utils import timezone

    run.refresh_from_db()
    return run.lease_token == "another-worker" and run.lease_expires_at > timezone.now() + timedelta(minutes=50)


def test_it_does_not_start_a_run_another_worker_took_after_the_claim(settings) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    run = _episode_run(settings, approved=False)
    taken = _advance_losing_the_lease_before(run, lambda sql: _STATUS_CHANGE in sql)

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, run.started_at, run.turns, _moves(run)) == ("queued", None, 0, [])


def test_it_does_not_move_to_waiting_once_another_worker_took_the_run_after_the_proposal(settings) -> None:
    """The move to waiting is conditional on the lease (one statement), and so is the move decided again on the
    locked row when that statement changed nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    from agent.models import ProposedAction

    run = _episode_run(settings, approved=False)
    taken = _advance_losing_the_lease_before(run, lambda sql: '"agent_proposedaction" p WHERE p.run_id' in sql)

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, _moves(run)) == ("running", ["running"])
    assert ProposedAction.objects.get(run=run).status == "pending"  # proposed while the lease was still its own


def test_it_does_not_resume_a_waiting_run_once_another_worker_took_it(settings) -> None:
    """A waiting run whose every call is decided and observed goes back to running at its turn's end (persist):
    not by a worker whose lease another took."""
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    from agent.models import ProposedAction
    from agent.services.actions import proposed_action_reject
    from tests.factories import StepFactory, UserFactory

    run = _episode_run(settings, approved=False)
    assert run_advance(run_id=run.pk) == Outcome.PAUSED
    action = ProposedAction.objects.get(run=run)
    proposed_action_reject(action=action, user=UserFactory(groups=["reviewers"]), reason="Not now.")
    run.refresh_from_db()
    StepFactory(run=run, index=run.steps.count(), turn=run.turns, kind="observation", content="",
                tool_name=action.tool, tool_call_id=action.tool_call_id, tool_output={"ok": False})  # fmt: skip
    taken = _advance_losing_the_lease_before(run, lambda sql: _STATUS_CHANGE in sql)

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, _moves(run)) == ("awaiting_approval", ["running", "awaiting_approval"])


@pytest.mark.parametrize("why", ["the model asks for a human", "the run hit its step limit"])
def test_it_does_not_escalate_a_run_another_worker_took_after_the_note(settings, why: str) -> None:
    """The escalation's move, decided on the locked row, is conditional on the lease: the escalation's step goes
    with it."""
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    run = _episode_run(settings, approved=False)
    if why == "the model asks for a human":
        run.workflow.playbook = []  # the offline engine escalates a ticket it has no playbook for
        run.workflow.save(update_fields=["playbook"])
    else:
        settings.AGENT_MAX_STEPS = 0
    taken = _advance_losing_the_lease_before(run, _run_locked)

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, _moves(run)) == ("running", ["running"])
    assert not run.steps.filter(kind="final").exists()


def test_it_posts_no_escalation_note_once_another_worker_took_the_run_during_the_turn(settings) -> None:
    """The lease is renewed before the escalation's note, as before any slow call after one: a worker whose lease
    another took while the model answered tells the helpdesk nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    from tickets.models import TicketComment

    run = _episode_run(settings, approved=False)
    run.workflow.playbook = []
    run.workflow.save(update_fields=["playbook"])
    taken = _advance_losing_the_lease_before(
        run, lambda sql: sql.startswith('UPDATE "agent_agentrun" SET lease_expires')
    )

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, _moves(run)) == ("running", ["running"])
    assert not TicketComment.objects.filter(ticket=run.ticket).exists()


def test_it_does_not_complete_a_shadow_run_another_worker_took_after_its_note(settings) -> None:
    """A shadow run completes on a statement of its own after its note (agent_run_finish), conditional on the lease
    too."""
    if connection.vendor != "postgresql":
        pytest.skip("the take-over runs on a PostgreSQL connection of its own")
    run = _episode_run(settings, approved=False)
    run.phase = run.workflow.phase = "shadow"
    run.save(update_fields=["phase"])
    run.workflow.save(update_fields=["phase"])
    assert run_advance(run_id=run.pk) == Outcome.CONTINUE  # the reply, recorded as a dry run
    taken = _advance_losing_the_lease_before(run, lambda sql: _STATUS_CHANGE in sql)

    assert taken and _held_by_the_other_worker(run)
    assert (run.status, _moves(run)) == ("running", ["running"])
