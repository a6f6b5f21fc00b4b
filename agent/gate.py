"""The one door every tool call goes through. Phase, tenant binding, approvals, pre-approval limits and
verification-before-reply are decided here, in code, whatever the model asked for.

gate_decide is pure: it reads the run's state and returns a verdict; the loop acts on it and audits refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.models import AgentRun, ProposedAction, Workflow
from agent.tools.base import Risk, Tool
from audit.services import canonical_hash

CUSTOMER_FACING = frozenset({"reply_to_customer", "solve_ticket"})
CONTEXT_HELPDESK = frozenset({"add_private_note", "route_ticket"})

UNKNOWN_TOOL = "There is no tool named {name!r}. Available tools: {available}."
OTHER_TENANT = "This ticket belongs to tenant {bound!r}; a call naming tenant {asked!r} is refused."
NO_TENANT = "This ticket's organization is not linked to a tenant, so no tool may touch the company's systems."
UNVERIFIED_WRITE = (
    "Refused: a write in this run has not passed verification ({tools}). Verify before replying to the customer "
    "or solving the ticket; if verification failed, escalate to a human."
)
APPROVAL_MISMATCH = (
    "Refused: the arguments to run no longer match what the reviewer approved (hash {actual} != approved {approved})."
)
NOT_APPROVED = "This call needs a reviewer's approval before it runs; it is waiting for a decision."


class Verdict(StrEnum):
    EXECUTE = "execute"
    PROPOSE = "propose"  # wait for a reviewer
    DRY_RUN = "dry_run"  # shadow: record, never execute
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class RunState:
    """What the gate needs to know about the run besides the call itself."""

    phase: str
    tenant_id: str
    workflow: Workflow | None
    unverified_writes: list[str]  # tools of executed writes whose verification has not passed
    has_verified_approved_write: bool


def run_state(*, run: AgentRun, tenant_id: str) -> RunState:
    executed_writes = [
        a
        for a in run.actions.all()
        if a.risk == ProposedAction.Risk.WRITE and a.status == ProposedAction.Status.EXECUTED
    ]
    return RunState(
        phase=run.phase,
        tenant_id=tenant_id,
        workflow=run.workflow,
        unverified_writes=[a.tool for a in executed_writes if a.verification != ProposedAction.Verification.PASSED],
        has_verified_approved_write=any(
            a.decided_by_id is not None and a.verification == ProposedAction.Verification.PASSED
            for a in executed_writes
        ),
    )


def _within_limits(workflow: Workflow, tool_name: str, args: dict[str, Any]) -> bool:
    limits = (workflow.tool_limits or {}).get(tool_name, {})
    for arg, bounds in limits.items():
        value = args.get(arg)
        if "max" in bounds and (not isinstance(value, int | float) or value > bounds["max"]):
            return False
        if "min" in bounds and (not isinstance(value, int | float) or value < bounds["min"]):
            return False
        if "allowed" in bounds and value not in bounds["allowed"]:
            return False
    return True


def _preapproved(state: RunState, tool_name: str, args: dict[str, Any]) -> bool:
    workflow = state.workflow
    return (
        state.phase == Workflow.Phase.AUTONOMOUS
        and workflow is not None
        and tool_name in (workflow.preapproved_tools or [])
        and _within_limits(workflow, tool_name, args)
    )


def gate_decide(
    *,
    tool: Tool | None,
    name: str,
    args: dict[str, Any],
    state: RunState,
    available: list[str],
    approved: ProposedAction | None = None,
) -> Decision:
    """Decide one call. `approved` is the reviewer-approved action this call executes, if any."""
    if tool is None:
        return Decision(Verdict.REFUSE, UNKNOWN_TOOL.format(name=name, available=", ".join(sorted(available))))
    asked = args.get("tenant_id")
    if asked is not None and asked != state.tenant_id:
        return Decision(Verdict.REFUSE, OTHER_TENANT.format(bound=state.tenant_id, asked=asked))
    if tool.risk != Risk.HELPDESK and not state.tenant_id:
        return Decision(Verdict.REFUSE, NO_TENANT)
    if state.phase == Workflow.Phase.SHADOW:
        return Decision(Verdict.DRY_RUN, "Shadow phase: recorded as a dry run, never executed.")
    if name in CUSTOMER_FACING and state.unverified_writes:
        return Decision(Verdict.REFUSE, UNVERIFIED_WRITE.format(tools=", ".join(state.unverified_writes)))
    if approved is not None:
        if approved.status != ProposedAction.Status.APPROVED:
            return Decision(Verdict.PROPOSE, NOT_APPROVED)
        actual = canonical_hash(args)
        if actual != approved.approved_args_hash:
            return Decision(
                Verdict.REFUSE, APPROVAL_MISMATCH.format(actual=actual[:12], approved=approved.approved_args_hash[:12])
            )
        return Decision(Verdict.EXECUTE, "Approved by a reviewer.")
    if tool.risk == Risk.READ:
        return Decision(Verdict.EXECUTE, "Reads run without approval outside shadow.")
    if name in CONTEXT_HELPDESK:
        return Decision(Verdict.EXECUTE, "Context notes and routing run without approval outside shadow.")
    if name in CUSTOMER_FACING:
        if state.phase == Workflow.Phase.AUTONOMOUS or state.has_verified_approved_write:
            return Decision(Verdict.EXECUTE, "Every write in this run is verified.")
        return Decision(Verdict.PROPOSE, "Triage: a reply without a verified, approved fix waits for a reviewer.")
    if _preapproved(state, name, args):
        return Decision(Verdict.EXECUTE, "Pre-approved for this autonomous workflow, within its limits.")
    return Decision(Verdict.PROPOSE, "Writes wait for a reviewer's approval in this phase.")
