"""Pre-approval limits hold over the whole run and the tenant's day, not per call, and the same write is never
applied twice in a run: the real loop and gate, the model on the Bedrock path, the sandbox company's Admin API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.company.selectors import contract_tools_forget
from agent.company.services import contracts_import
from agent.loop import Outcome
from agent.models import AgentRun, ProposedAction
from audit.models import AuditEvent
from sandbox.models import Tenant
from tests.bedrock import converse_reply, drive, tool_use
from tests.company import SANDBOX_CONTRACTS
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _trial_run(workflow=None, **limits: object) -> AgentRun:
    if workflow is None:
        workflow = WorkflowFactory(
            phase="autonomous",
            preapproved_tools=["extend_trial"],
            tool_limits={"extend_trial": {"days": {"max": 14, **limits}}},
        )
    ticket = TicketFactory(tenant_link__organization_id="360002", tenant_link__tenant_id="globex")
    return AgentRunFactory(ticket=ticket, workflow=workflow, phase="autonomous")


def _extend(call_id: str, days: int) -> dict:
    return converse_reply(tool_use(call_id, "extend_trial", {"tenant_id": "globex", "days": days}))


def _trial_end() -> object:
    return Tenant.objects.get(pk="globex").trial_ends_at


def test_it_sends_the_call_that_would_pass_the_runs_budget_to_a_reviewer(bedrock_company) -> None:
    run = _trial_run()
    start = _trial_end()
    for call_id, days in (("a", 10), ("b", 4), ("c", 1)):
        bedrock_company.answer(200, _extend(call_id, days))

    assert drive(run.pk) == Outcome.PAUSED

    statuses = list(ProposedAction.objects.filter(run=run).order_by("id").values_list("args__days", "status"))
    assert statuses == [(10, "executed"), (4, "executed"), (1, "pending")]
    assert _trial_end() == start + timedelta(days=14)
    pending = ProposedAction.objects.get(run=run, status="pending")
    why = AuditEvent.objects.get(verb="action.pending", object_id=str(pending.pk)).payload["reason"]
    assert "days=1 would bring extend_trial to 15 for this run, over the pre-approved 14 (0 left)" in why


def test_it_never_applies_the_same_write_twice_without_a_reviewer(bedrock_company) -> None:
    run = _trial_run()
    start = _trial_end()
    for call_id in ("a", "b", "c"):
        bedrock_company.answer(200, _extend(call_id, 14))

    assert drive(run.pk) == Outcome.PAUSED

    assert _trial_end() == start + timedelta(days=14)
    first, second = ProposedAction.objects.filter(run=run).order_by("id")
    assert (first.status, second.status) == ("executed", "pending")
    assert second.retry_of is None  # if a reviewer approves it, it is a new write with a key of its own
    assert len(bedrock_company.requests) == 2  # the model waits for the reviewer before its third try


def test_it_holds_the_tenants_daily_budget_across_runs(bedrock_company) -> None:
    _assert_daily_budget_held(bedrock_company, first=_trial_run(max_per_tenant_per_day=20))


def _assert_daily_budget_held(bedrock_company, *, first: AgentRun) -> None:
    """A first run spends 14 of the tenant's 20 pre-approved days; a second run's 7 more wait for a reviewer."""
    start = _trial_end()
    bedrock_company.answer(200, _extend("a", 14))
    bedrock_company.answer(200, converse_reply({"text": "Extended."}, stop="end_turn"))
    assert drive(first.pk) == Outcome.DONE

    second = _trial_run(first.workflow)
    bedrock_company.answer(200, _extend("b", 7))
    assert drive(second.pk) == Outcome.PAUSED

    pending = ProposedAction.objects.get(run=second)
    assert pending.status == "pending"
    why = AuditEvent.objects.get(verb="action.pending", object_id=str(pending.pk)).payload["reason"]
    assert "bring extend_trial to 21 for this tenant in the last 24 hours, over the pre-approved 20" in why
    assert _trial_end() == start + timedelta(days=14)


# --- The contract's own cumulative limits -----------------------------------------------------------------------
def _contract_limits(**limits: float) -> None:
    """The sandbox's contract file with extend_trial's own limits on days, imported as a company would."""
    text = SANDBOX_CONTRACTS.read_text()
    declared = "days: {min_per_call: 1, max_per_call: 30}"
    assert declared in text
    extra = "".join(f", {key}: {value}" for key, value in limits.items())
    contracts_import(text=text.replace(declared, declared[:-1] + extra + "}"), source="test")
    contract_tools_forget()


def _preapproved_run(workflow=None, **tool_limits: object) -> AgentRun:
    if workflow is None:
        workflow = WorkflowFactory(phase="autonomous", preapproved_tools=["extend_trial"], tool_limits=tool_limits)
    return _trial_run(workflow)


def test_it_holds_a_contracts_max_per_run_like_a_workflow_limit(bedrock_company) -> None:
    _contract_limits(max_per_run=10)
    run = _preapproved_run()  # the workflow sets no limit of its own
    start = _trial_end()
    for call_id, days in (("a", 6), ("b", 5)):
        bedrock_company.answer(200, _extend(call_id, days))

    assert drive(run.pk) == Outcome.PAUSED

    statuses = list(ProposedAction.objects.filter(run=run).order_by("id").values_list("args__days", "status"))
    assert statuses == [(6, "executed"), (5, "pending")]
    assert _trial_end() == start + timedelta(days=6)
    pending = ProposedAction.objects.get(run=run, status="pending")
    why = AuditEvent.objects.get(verb="action.pending", object_id=str(pending.pk)).payload["reason"]
    assert "days=5 would bring extend_trial to 11 for this run, over the pre-approved 10 (4 left)" in why


def test_it_holds_a_contracts_daily_tenant_budget_across_runs(bedrock_company) -> None:
    _contract_limits(max_per_tenant_per_day=20)
    _assert_daily_budget_held(bedrock_company, first=_preapproved_run())
