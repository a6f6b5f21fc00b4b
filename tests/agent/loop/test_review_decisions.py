"""The reviewer's other answers through the real loop and the Bedrock path: respond (the call never runs, the model
continues from the feedback), take over (the run ends mid-flight and its worker stops), and the state read that
feeds the decision card's diff."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest

from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_read_current, proposed_action_respond
from agent.services.runs import agent_run_take_over, agent_run_take_over_note
from audit.models import AuditEvent
from sandbox.models import Tenant
from tests.bedrock import converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db(transaction=True)


def _paused_on_extend_trial(standin) -> tuple[AgentRun, ProposedAction]:
    ticket = TicketFactory(tenant_link__tenant_id="globex", subject="More trial time please")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")
    standin.answer(200, converse_reply(tool_use("x", "extend_trial", {"tenant_id": "globex", "days": 10})))
    assert run_advance(run_id=run.pk) == Outcome.PAUSED
    return run, ProposedAction.objects.get(run=run)


def test_it_gives_the_model_the_feedback_as_the_observation_and_never_runs_the_call(bedrock_company) -> None:
    standin = bedrock_company
    run, action = _paused_on_extend_trial(standin)
    before = Tenant.objects.get(pk="globex").trial_ends_at
    reviewer = UserFactory(groups=["reviewers"])

    proposed_action_respond(action=action, user=reviewer, feedback="Seven days is our limit; ask sales beyond.")
    standin.answer(200, converse_reply({"text": "I will offer seven days instead."}, stop="end_turn"))
    assert run_advance(run_id=run.pk) == Outcome.DONE

    result = standin.requests[1].json()["messages"][-1]["content"][0]["toolResult"]
    observation = json.loads(result["content"][0]["text"])
    assert (observation["ok"], observation["error_type"]) == (False, "reviewer_response")
    assert "Seven days is our limit; ask sales beyond." in observation["message"]
    action.refresh_from_db()
    assert (action.status, action.decided_by, action.executed_at) == ("responded", reviewer, None)
    assert Tenant.objects.get(pk="globex").trial_ends_at == before
    assert AuditEvent.objects.filter(verb="action.responded", actor=reviewer).count() == 1


def test_it_ends_a_run_taken_over_and_withdraws_what_it_proposed(bedrock_company, broker) -> None:
    standin = bedrock_company
    run, action = _paused_on_extend_trial(standin)
    reviewer = UserFactory(username="rita", groups=["reviewers"])

    agent_run_take_over(run=run, user=reviewer, reason="Customer called us")

    run.refresh_from_db()
    action.refresh_from_db()
    run.ticket.refresh_from_db()
    assert (run.status, run.status_reason) == ("taken_over", "Taken over by rita: Customer called us")
    assert (action.status, run.ticket.assignee) == ("withdrawn", reviewer)
    assert run_advance(run_id=run.pk) == Outcome.DONE  # a redelivered task finds nothing to do
    assert len(standin.requests) == 1
    queued = [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued_task_messages(broker)]
    assert ("agent.tasks.agent_run_take_over_note_task", f"({run.pk}, {reviewer.pk})") in queued
    assert agent_run_take_over_note(run=run, user=reviewer) == ""  # what that task runs
    note = run.ticket.comments.get(public=False)
    assert "rita took this ticket over" in note.body
    verbs = set(AuditEvent.objects.filter(actor=reviewer).values_list("verb", flat=True))
    assert {"run.status_changed", "run.taken_over", "action.withdrawn", "ticket.assigned"} <= verbs


def test_it_stops_a_worker_holding_the_run_when_it_is_taken_over(bedrock_company) -> None:
    standin = bedrock_company
    ticket = TicketFactory(tenant_link__tenant_id="globex")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")
    reviewer = UserFactory(groups=["reviewers"])
    # The model's answer arrives only after the reviewer took the run over: the worker must drop it.
    standin.answer(200, converse_reply(tool_use("r", "reply_to_customer", {"body": "Done!"})), delay=1.0)
    taker = threading.Timer(0.3, lambda: agent_run_take_over(run=run, user=reviewer))
    taker.start()
    assert run_advance(run_id=run.pk) == Outcome.LOST
    taker.join()
    run.refresh_from_db()
    assert run.status == "taken_over"
    assert not run.steps.exists()  # the late turn was never recorded
    assert not ticket.comments.filter(public=True).exists()


def test_it_reads_the_state_a_pending_write_would_change(bedrock_company) -> None:
    _, action = _paused_on_extend_trial(bedrock_company)
    tenant = Tenant.objects.get(pk="globex")

    proposed_action_read_current(action_id=action.pk)

    action.refresh_from_db()
    state = action.current_state
    assert state["ok"] is True and state["read_at"]
    rows = {row["field"]: row for row in state["fields"]}
    current = datetime.fromisoformat(rows["trial_ends_at"]["current"])
    after = datetime.fromisoformat(rows["trial_ends_at"]["after"])
    # The Admin API speaks milliseconds.
    assert abs(current - tenant.trial_ends_at) < timedelta(milliseconds=1)
    assert after - current == timedelta(days=10)
