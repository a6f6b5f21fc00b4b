"""Claims, closing escalations, and what a reviewer is shown about a proposal (findings, what happens next)."""

from __future__ import annotations

import re

import pytest

from agent.models import AgentRun, ProposedAction, Step
from agent.selectors.evidence import workflow_evidence
from agent.selectors.proposals import observation_summary, proposal_follow_up
from agent.services.actions import (
    RESPOND_NEEDS_FEEDBACK,
    proposed_action_approve,
    proposed_action_reject,
    proposed_action_respond,
)
from agent.services.runs import (
    ALREADY_CLOSED,
    CLAIMED_BY_ANOTHER,
    CLOSE_NOT_ESCALATED,
    TAKE_OVER_ENDED,
    agent_run_close,
    agent_run_take_over,
)
from agentconsole.errors import ApplicationError, ConflictError, PermissionDeniedError
from audit.models import AuditEvent
from console.demo import DEMO_WORKFLOWS
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory
from tickets.services.tickets import NOT_YOUR_CLAIM, ticket_assign

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita():
    return UserFactory(username="rita", groups=["reviewers"])


@pytest.fixture
def sam():
    return UserFactory(username="sam", groups=["reviewers"])


def test_it_lets_only_the_claimant_decide_a_claimed_ticket(rita, sam) -> None:
    action = ProposedActionFactory(run__status="awaiting_approval")
    ticket_assign(ticket=action.run.ticket, assignee=rita, user=rita)
    message = CLAIMED_BY_ANOTHER.format(name="rita")
    for decide in (
        lambda: proposed_action_approve(action=action, user=sam),
        lambda: proposed_action_reject(action=action, user=sam, reason="No"),
        lambda: proposed_action_respond(action=action, user=sam, feedback="Try X"),
    ):
        with pytest.raises(ConflictError, match=message):
            decide()
    action.refresh_from_db()
    assert action.status == "pending"

    with pytest.raises(ConflictError, match="rita has already claimed this ticket"):
        ticket_assign(ticket=action.run.ticket, assignee=sam, user=sam)
    with pytest.raises(ConflictError, match=NOT_YOUR_CLAIM.format(name="rita")):
        ticket_assign(ticket=action.run.ticket, assignee=None, user=sam)
    ticket_assign(ticket=action.run.ticket, assignee=sam, user=sam, force=True)  # taken on purpose
    assert proposed_action_approve(action=action, user=sam).status == "approved"
    taken = AuditEvent.objects.filter(verb="ticket.assigned").first()  # the newest
    assert taken.payload == {"from": "rita", "to": "sam", "taken": True}


def test_it_lets_only_the_claimant_take_over_or_close_a_claimed_ticket(rita, sam) -> None:
    action = ProposedActionFactory(run__status="awaiting_approval")
    run = action.run
    ticket_assign(ticket=run.ticket, assignee=rita, user=rita)
    message = CLAIMED_BY_ANOTHER.format(name="rita")
    with pytest.raises(ConflictError, match=message):
        agent_run_take_over(run=run, user=sam)  # would end rita's run and withdraw the proposal she is deciding
    run.refresh_from_db()
    action.refresh_from_db()
    assert (run.status, action.status, run.ticket.assignee) == ("awaiting_approval", "pending", rita)
    assert not AuditEvent.objects.filter(verb="run.taken_over").exists()

    escalated = AgentRunFactory(status=AgentRun.Status.ESCALATED, ticket=run.ticket)
    with pytest.raises(ConflictError, match=message):
        agent_run_close(run=escalated, user=sam, outcome="resolved")
    escalated.refresh_from_db()
    assert escalated.outcome == ""
    ticket_assign(ticket=run.ticket, assignee=sam, user=sam, force=True)  # taken on purpose
    assert agent_run_take_over(run=run, user=sam).status == "taken_over"
    assert agent_run_close(run=escalated, user=sam, outcome="resolved").closed_by == sam


def test_it_needs_feedback_to_respond(rita) -> None:
    action = ProposedActionFactory()
    with pytest.raises(ApplicationError, match=RESPOND_NEEDS_FEEDBACK):
        proposed_action_respond(action=action, user=rita, feedback="   ")
    with pytest.raises(PermissionDeniedError):
        proposed_action_respond(action=action, user=UserFactory(), feedback="Hi")


def test_it_closes_an_open_escalation_once_with_an_outcome(rita, sam) -> None:
    run = AgentRunFactory(status=AgentRun.Status.ESCALATED)
    with pytest.raises(ApplicationError, match="Choose an outcome"):
        agent_run_close(run=run, user=rita, outcome="maybe")
    closed = agent_run_close(run=run, user=rita, outcome="resolved", note=" Refunded by hand ")
    assert (closed.outcome, closed.outcome_note, closed.closed_by) == ("resolved", "Refunded by hand", rita)
    with pytest.raises(ConflictError, match=re.escape(ALREADY_CLOSED.format(outcome="resolved by a human"))):
        agent_run_close(run=run, user=sam, outcome="duplicate")
    running = AgentRunFactory(status=AgentRun.Status.RUNNING)
    with pytest.raises(ConflictError, match=CLOSE_NOT_ESCALATED.format(status="running")):
        agent_run_close(run=running, user=rita, outcome="resolved")
    assert AuditEvent.objects.filter(verb="run.closed").count() == 1


def test_it_takes_over_an_escalation_without_changing_it_and_refuses_a_finished_run(rita) -> None:
    escalated = AgentRunFactory(status=AgentRun.Status.ESCALATED)
    taken = agent_run_take_over(run=escalated, user=rita)
    taken.ticket.refresh_from_db()
    assert (taken.status, taken.ticket.assignee) == ("escalated", rita)
    for status in (AgentRun.Status.COMPLETED, AgentRun.Status.TAKEN_OVER):
        with pytest.raises(ConflictError, match=re.escape(TAKE_OVER_ENDED.format(status=status.label.lower()))):
            agent_run_take_over(run=AgentRunFactory(status=status), user=rita)


def test_it_counts_evidence_honestly(rita) -> None:
    workflow = WorkflowFactory()
    run = AgentRunFactory(workflow=workflow)
    for n, status in enumerate(["executed", "failed", "responded", "rejected", "withdrawn"]):
        ProposedActionFactory(run=run, tool_call_id=f"c{n}", status=status, decided_by=rita)
    AgentRunFactory(workflow=workflow, phase="shadow", status="completed")
    evidence = workflow_evidence(workflow=workflow)
    assert (evidence.reviewed, evidence.approved_unedited, evidence.execution_failed) == (4, 1, 1)
    assert (evidence.responded, evidence.rejected) == (1, 1)
    assert (evidence.resolved_runs, evidence.drafted_runs) == (0, 1)


@pytest.mark.parametrize(
    ("output", "summary"),
    [
        ({"ok": True, "data": {"columns": ["email", "locked"], "rows": [["a@x.io", True], ["b@x.io", False]]}},
         "2 rows: email=a@x.io, locked=True (+1 more)"),
        ({"ok": True, "data": {"rows": []}}, "no rows"),
        ({"ok": True, "data": {"count": 1, "events": [{"message": "login_failed"}]}}, "1 log event; latest: "),
        ({"ok": False, "error_type": "refused", "message": "Not a view"}, "failed (refused): Not a view"),
        ({"ok": True, "data": {"dry_run": True}}, "dry run: not executed"),
        (None, "no result recorded"),
    ],
)  # fmt: skip
def test_it_summarises_an_observation_in_one_line(output, summary) -> None:
    assert observation_summary(output).startswith(summary)


def test_it_says_what_the_offline_engine_does_after_an_approval() -> None:
    spec = next(w for w in DEMO_WORKFLOWS if w["slug"] == "account-lockout")
    workflow = WorkflowFactory(**{k: v for k, v in spec.items() if k != "slug"}, slug="lockout")
    run = AgentRunFactory(
        workflow=workflow, engine="offline", ticket__subject="Locked out as ceo@initech.example",
        ticket__requester_email="ops@initech.example", ticket__tenant_link__tenant_id="initech",
    )  # fmt: skip
    step = StepFactory(run=run, kind=Step.Kind.ACTION, tool_name="unlock_user", tool_call_id="rb-4-0-main")
    action = ProposedActionFactory(
        run=run, step=step, tool="unlock_user", tool_call_id="rb-4-0-main",
        args={"tenant_id": "initech", "email": "ops@initech.example"},
    )  # fmt: skip

    plan = proposal_follow_up(run=run, action=action, transcript=[step])

    assert plan.known and "unlock_user" in plan.runs_now
    assert plan.verification == "Re-reads the user: locked must be false."
    assert [s.tool for s in plan.steps] == ["reply_to_customer", "solve_ticket"]
    assert plan.steps[0].text == "Hello, your account ops@initech.example is unlocked; you can log in again."
    assert not any(s.waits_for_reviewer for s in plan.steps)  # a verified, approved write lets the reply run


def test_it_says_honestly_that_a_models_next_step_is_unknown() -> None:
    run = AgentRunFactory(engine="bedrock:claude", workflow=WorkflowFactory())
    action = ProposedActionFactory(run=run, tool="extend_trial", status=ProposedAction.Status.PENDING)
    plan = proposal_follow_up(run=run, action=action, transcript=[])
    assert not plan.known and plan.steps == []
    assert "cannot be shown in advance" in plan.note and "verification" in plan.note
