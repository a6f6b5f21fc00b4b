from __future__ import annotations

import pytest

from agent.gate import (
    NO_TENANT,
    OTHER_TENANT,
    WRITES_HOLD_REPLY,
    RunState,
    Verdict,
    gate_decide,
)
from agent.models import ProposedAction
from agent.tools import all_tools, get_tool
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
