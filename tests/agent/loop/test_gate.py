from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError

from agent.catalogue import all_tools, get_tool
from agent.gate import (
    NO_TENANT,
    OTHER_TENANT,
    WRITES_HOLD_REPLY,
    RunState,
    Verdict,
    gate_decide,
)
from agent.limits import Spent, limits_errors, limits_exceeded, spent_add
from agent.models import ProposedAction
from audit.services import canonical_hash
from tests.factories import WorkflowFactory

pytestmark = pytest.mark.django_db


def _state(phase: str = "triage", *, tenant: str = "acme", workflow=None, holding=(), verified_approved=False):
    return RunState(
        phase=phase,
        tenant_id=tenant,
        workflow=workflow,
        holding_writes=list(holding),
        has_verified_approved_write=verified_approved,
    )


VALID_ARGS = {
    "run_sql": {"query": "SELECT 1"},
    "search_logs": {"query": "ERROR"},
    "reset_tenant_cache": {"tenant_id": "acme"},
    "add_private_note": {"body": "Found it."},
    "reply_to_customer": {"body": "Hello."},
}


def _decide(name: str, args: dict, state: RunState, approved=None):
    return gate_decide(
        tool=get_tool(name), name=name, args=args, state=state, available=list(all_tools()), approved=approved
    )


@pytest.mark.parametrize(
    "name", sorted(["run_sql", "search_logs", "reset_tenant_cache", "add_private_note", "reply_to_customer"])
)
def test_it_never_executes_anything_in_shadow(name) -> None:
    args = VALID_ARGS[name]
    assert _decide(name, args, _state("shadow")).verdict == Verdict.DRY_RUN


def test_it_runs_reads_and_context_in_triage_but_proposes_writes() -> None:
    state = _state("triage")
    assert _decide("run_sql", {"query": "SELECT 1"}, state).verdict == Verdict.EXECUTE
    assert _decide("add_private_note", {"body": "x"}, state).verdict == Verdict.EXECUTE
    assert _decide("route_ticket", {"pod": "billing"}, state).verdict == Verdict.EXECUTE
    assert _decide("reset_tenant_cache", {"tenant_id": "acme"}, state).verdict == Verdict.PROPOSE
    assert _decide("reply_to_customer", {"body": "hi"}, state).verdict == Verdict.PROPOSE


def test_it_lets_triage_reply_after_an_approved_write_was_verified() -> None:
    assert _decide("reply_to_customer", {"body": "hi"}, _state(verified_approved=True)).verdict == Verdict.EXECUTE


def test_it_runs_preapproved_writes_in_autonomous_only_within_limits() -> None:
    workflow = WorkflowFactory(preapproved_tools=["extend_trial"], tool_limits={"extend_trial": {"days": {"max": 14}}})
    state = _state("autonomous", workflow=workflow)
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 14}, state).verdict == Verdict.EXECUTE
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 15}, state).verdict == Verdict.PROPOSE
    assert _decide("reset_tenant_cache", {"tenant_id": "acme"}, state).verdict == Verdict.PROPOSE
    triage = _state("triage", workflow=workflow)
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 3}, triage).verdict == Verdict.PROPOSE


def test_it_refuses_another_tenant_in_every_phase() -> None:
    for phase in ("shadow", "triage", "autonomous"):
        decision = _decide("reset_tenant_cache", {"tenant_id": "globex"}, _state(phase))
        assert decision.verdict == Verdict.REFUSE
        assert decision.reason == OTHER_TENANT.format(bound="acme", asked="globex")


def test_it_refuses_company_tools_when_the_ticket_has_no_tenant() -> None:
    decision = _decide("run_sql", {"query": "SELECT 1"}, _state(tenant=""))
    assert (decision.verdict, decision.reason) == (Verdict.REFUSE, NO_TENANT)
    assert _decide("route_ticket", {"pod": "humans"}, _state(tenant="")).verdict == Verdict.EXECUTE


def test_it_refuses_replies_and_solving_while_a_write_is_unverified() -> None:
    state = _state("autonomous", holding=["reset_tenant_cache (not verified)"])
    for name in ("reply_to_customer", "solve_ticket"):
        decision = _decide(name, {"body": "done"} if name == "reply_to_customer" else {}, state)
        assert decision.verdict == Verdict.REFUSE
        assert decision.reason == WRITES_HOLD_REPLY.format(writes="reset_tenant_cache (not verified)")


def test_it_executes_an_approval_only_when_the_args_hash_matches() -> None:
    approved = ProposedAction(
        tool="extend_trial",
        args={"tenant_id": "acme", "days": 5},
        status=ProposedAction.Status.APPROVED,
        approved_args_hash=canonical_hash({"tenant_id": "acme", "days": 5}),
    )
    state = _state("triage")
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 5}, state, approved).verdict == Verdict.EXECUTE
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 30}, state, approved).verdict == Verdict.REFUSE


def test_it_refuses_an_unknown_tool() -> None:
    decision = gate_decide(tool=None, name="drop_database", args={}, state=_state(), available=["run_sql"])
    assert decision.verdict == Verdict.REFUSE
    assert "drop_database" in decision.reason


def test_it_holds_pre_approval_limits_over_what_the_run_already_spent() -> None:
    workflow = WorkflowFactory(preapproved_tools=["extend_trial"], tool_limits={"extend_trial": {"days": {"max": 14}}})
    spent = Spent(run={"extend_trial": {"days": 10.0}})
    state = RunState(phase="autonomous", tenant_id="acme", workflow=workflow, spent=spent)
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 4}, state).verdict == Verdict.EXECUTE
    decision = _decide("extend_trial", {"tenant_id": "acme", "days": 5}, state)
    assert decision.verdict == Verdict.PROPOSE
    assert "days=5 would bring extend_trial to 15 for this run, over the pre-approved 14 (4 left)" in decision.reason


def test_it_holds_a_tenants_daily_budget() -> None:
    limits = {"extend_trial": {"days": {"max": 14, "max_per_tenant_per_day": 20}}}
    workflow = WorkflowFactory(preapproved_tools=["extend_trial"], tool_limits=limits)
    spent = Spent(tenant_window={"extend_trial": {"days": 14.0}})
    state = RunState(phase="autonomous", tenant_id="acme", workflow=workflow, spent=spent)
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 6}, state).verdict == Verdict.EXECUTE
    assert _decide("extend_trial", {"tenant_id": "acme", "days": 7}, state).verdict == Verdict.PROPOSE


@pytest.mark.parametrize(
    ("own", "workflow_max", "allowed"),
    [({"max": 10}, 14, 4), ({"max": 14}, 10, 4), ({"max": 14}, None, 8), ({"max_per_tenant_per_day": 9}, 14, 3)],
)
def test_it_holds_the_stricter_of_the_tools_own_and_the_workflows_limits(own, workflow_max, allowed) -> None:
    tool = copy.copy(get_tool("extend_trial"))
    tool.cumulative_limits = {"days": own}  # what a contract's max_per_run / max_per_tenant_per_day become
    limits = {"extend_trial": {"days": {"max": workflow_max}}} if workflow_max is not None else {}
    workflow = WorkflowFactory(preapproved_tools=["extend_trial"], tool_limits=limits)
    spent = Spent(run={"extend_trial": {"days": 6.0}}, tenant_window={"extend_trial": {"days": 6.0}})
    state = RunState(phase="autonomous", tenant_id="acme", workflow=workflow, spent=spent)

    def decide(days: int):
        args = {"tenant_id": "acme", "days": days}
        return gate_decide(tool=tool, name="extend_trial", args=args, state=state, available=["extend_trial"])

    assert decide(allowed).verdict == Verdict.EXECUTE
    over = decide(allowed + 1)
    assert over.verdict == Verdict.PROPOSE
    assert f"over the pre-approved {6 + allowed} ({allowed} left)" in over.reason


def test_it_sends_what_the_customer_is_told_after_a_failed_write_to_a_reviewer() -> None:
    state = RunState(phase="autonomous", tenant_id="acme", workflow=None, failed_writes=["reset_tenant_cache"])
    for name, args in (("reply_to_customer", {"body": "Fixed!"}), ("solve_ticket", {})):
        assert _decide(name, args, state).verdict == Verdict.PROPOSE
    assert _decide("add_private_note", {"body": "It failed."}, state).verdict == Verdict.EXECUTE


def test_it_answers_a_repeat_from_the_first_call_and_refuses_one_still_waiting_or_rejected() -> None:
    state = _state("autonomous")
    args = {"tenant_id": "acme"}

    def earlier(status: str, **fields: object) -> ProposedAction:
        return ProposedAction(tool="reset_tenant_cache", args=args, status=status, **fields)

    # A write that ran cleanly and was verified is not done again without a reviewer, under a key of its own.
    clean = earlier("executed", execution_result={"ok": True}, verification="passed")
    assert (_decide_repeat(args, state, clean).verdict, _decide_repeat(args, state, clean).fresh_key) == (
        Verdict.PROPOSE,
        True,
    )
    # One whose answer was lost but whose effect state proved is answered from that.
    reconciled = earlier("executed", execution_result={"ok": False, "uncertain": True}, verification="passed")
    assert _decide_repeat(args, state, reconciled).verdict == Verdict.REPEAT
    assert _decide_repeat(args, state, earlier("pending")).verdict == Verdict.REFUSE
    rejected = _decide_repeat(args, state, earlier("rejected", decision_reason="Freeze week"))
    assert (rejected.verdict, rejected.reason.endswith("Their reason: Freeze week")) == (Verdict.REFUSE, True)
    # Failed, or of unknown outcome: a new attempt, decided like any call (pre-approval, limits, reviewers).
    assert _decide_repeat(args, state, earlier("failed")).verdict == Verdict.PROPOSE
    assert _decide_repeat(args, state, earlier("uncertain")).verdict == Verdict.PROPOSE


def _decide_repeat(args: dict, state: RunState, earlier: ProposedAction):
    tool = get_tool("reset_tenant_cache")
    return gate_decide(tool=tool, name=tool.name, args=args, state=state, available=list(all_tools()), earlier=earlier)


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (["extend_trial"], "Tool limits are an object"),
        ({"extend_trial": {"days": {"maxx": 14}}}, "Unknown limit 'maxx' on extend_trial.days"),
        ({"extend_trial": {"days": {"max": "14"}}}, "extend_trial.days.max must be a number."),
        ({"extend_trial": {"days": 14}}, "The limits of extend_trial.days must be an object"),
        ({"extend_trial": {"days": {"allowed": 7}}}, "extend_trial.days.allowed must be a list of values."),
    ],
)
def test_it_refuses_limits_a_typo_would_silently_turn_off(limits, error) -> None:
    workflow = WorkflowFactory.build(tool_limits=limits)
    with pytest.raises(ValidationError) as caught:
        workflow.full_clean(exclude=["slug"])
    assert any(error in message for message in caught.value.message_dict["tool_limits"])
    assert limits_errors({"extend_trial": {"days": {"max": 14, "max_per_tenant_per_day": 20, "min": 1}}}) == []


def test_it_never_lets_a_negative_call_buy_budget_for_a_larger_one() -> None:
    """A call with a negative amount (a schema that allows one) does not lower what the run has spent: a later
    call over the per-run max still goes to a reviewer."""
    spec = {"adjust_credit": {"amount": {"max": 14}}}
    spent = Spent()
    spent_add(spent.run, "adjust_credit", {"amount": -10}, ["amount"])
    assert "over the pre-approved 14" in limits_exceeded(spec, "adjust_credit", {"amount": 24}, spent)
