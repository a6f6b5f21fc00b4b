"""The one door every tool call goes through. Phase, tenant binding, argument validation, approvals, pre-approval
limits, repeats and verification-before-reply are decided here, in code, whatever the model asked for.

gate_decide is pure: it reads the run's state and returns a verdict; the loop acts on it and audits refusals. Its
rules read the policy each tool declares (risk, customer_facing, context_only, tenant_arg, cumulative_limits:
agent/tools/base.py) and the workflow's declared limits, never tool names, so a new or generated tool goes through
the same door unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.utils import timezone

from agent.limits import WINDOW_HOURS, Spent, limits_exceeded, limits_with_own, spent_add, summed_args
from agent.models import AgentRun, ProposedAction, Workflow
from agent.policy import Risk
from agent.tools.base import ErrorType, Observation, Tool
from audit.services import canonical_hash

UNKNOWN_TOOL = "There is no tool named {name!r}. Available tools: {available}."
OTHER_TENANT = "This ticket belongs to tenant {bound!r}; a call naming tenant {asked!r} is refused."
NO_TENANT = "This ticket's organization is not linked to a tenant, so no tool may touch the company's systems."
INVALID_ARGUMENTS = (
    "The arguments do not match {tool}'s schema, so nothing was proposed or run: {errors}. Fix them and call again."
)
WRITES_HOLD_REPLY = (
    "Refused: the customer hears nothing while a write of this run is not proven: {writes}. Wait for it, verify "
    "it, or escalate to a human; never tell the customer it is done before that."
)
FAILED_WRITE_NEEDS_REVIEW = (
    "A write of this run failed ({writes}): what the customer is told now waits for a reviewer's approval."
)
APPROVAL_MISMATCH = (
    "Refused: the arguments to run no longer match what the reviewer approved (hash {actual} != approved {approved})."
)
NOT_APPROVED = "This call needs a reviewer's approval before it runs; it is waiting for a decision."
REPEAT_WAITING = (
    "Refused: this exact call ({tool}, same arguments) is already in this run and {state}; it is not made twice."
)
REPEAT_REJECTED = (
    "Refused: a reviewer already rejected this exact call ({tool}, same arguments). Their reason: {reason}"
)
REPEAT_RESPONDED = (
    "Refused: a reviewer answered this exact call ({tool}, same arguments) instead of running it. Continue from "
    "their feedback: {feedback}"
)
REPEAT_ANSWERED = "This exact call already ran in this run, so it was not sent again; this is its recorded result."
REPEAT_NEEDS_REVIEW = (
    "This exact write ({tool}, same arguments) already ran and was verified in this run; doing it again waits for a "
    "reviewer."
)
REPEAT_UNKNOWN = (
    "Refused: whether this exact call ({tool}, same arguments) took effect is still unknown, and sending it again "
    "could do it twice. Escalate to a human."
)
OVER_LIMIT = "Outside the pre-approved limits ({why}): a reviewer decides."

HOLDING_STATES = {
    ProposedAction.Status.PENDING: "waiting for a reviewer",
    ProposedAction.Status.APPROVED: "approved, not run yet",
    ProposedAction.Status.UNCERTAIN: "outcome unknown",
}


class Verdict(StrEnum):
    EXECUTE = "execute"
    PROPOSE = "propose"  # wait for a reviewer
    DRY_RUN = "dry_run"  # shadow: record, never execute
    REFUSE = "refuse"
    REPEAT = "repeat"  # the same call already ran in this run: answer from it, send nothing


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    error_type: str = ErrorType.REFUSED
    meta: dict[str, Any] = field(default_factory=dict)
    fresh_key: bool = False  # a deliberate repeat of a write that ran: not sent under the first one's key


@dataclass(frozen=True)
class RunState:
    """What the gate needs to know about the run besides the call itself."""

    phase: str
    tenant_id: str
    workflow: Workflow | None
    # Writes that hold every customer-facing call back: proposed, approved but not run, running, of unknown
    # outcome, executed but not verified, or called earlier in this turn and not run yet. "tool (why)" each.
    holding_writes: list[str] = field(default_factory=list)
    # Writes that definitely failed and were not done since by the same call: customer-facing calls need a human.
    failed_writes: list[str] = field(default_factory=list)
    has_verified_approved_write: bool = False
    spent: Spent = field(default_factory=Spent)


def canonical_args(value: Any) -> Any:
    """Arguments as one intent is written: a whole number sent as a float (7.0, as a model may write 7) is the
    integer, so the same call is never a new intent with a new idempotency key, nor a new sum against a limit."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: canonical_args(item) for key, item in value.items()}
    if isinstance(value, list):
        return [canonical_args(item) for item in value]
    return value


def intent_hashes(action: ProposedAction) -> set[str]:
    """What makes two calls the same intent: the tool and its canonical arguments — the model's and, after a
    reviewer's edit, what was approved."""
    hashes = {f"{action.tool}:{action.args_hash}"}
    if action.original_args is not None:
        hashes.add(f"{action.tool}:{canonical_hash(action.original_args)}")
    return hashes


def intent_hash(tool_name: str, args: dict[str, Any]) -> str:
    return f"{tool_name}:{canonical_hash(args)}"


def _holding(action: ProposedAction) -> str:
    if action.status == ProposedAction.Status.APPROVED and action.execution_started_at is not None:
        return f"{action.tool} (running)"
    if action.status in HOLDING_STATES:
        return f"{action.tool} ({HOLDING_STATES[action.status]})"
    if action.status == ProposedAction.Status.EXECUTED and action.verification != ProposedAction.Verification.PASSED:
        return f"{action.tool} (not verified)"
    return ""


def call_limits(workflow: Workflow | None, tool_name: str, tool: Tool | None) -> dict[str, Any]:
    """What a pre-approved call is held to: the workflow's tool_limits and the tool's own cumulative limits."""
    own = tool.cumulative_limits if tool is not None else {}
    return limits_with_own((workflow.tool_limits or {}) if workflow else {}, tool_name, own)


def tenant_budget_counted(workflow: Workflow | None, tool_name: str, tool: Tool | None) -> bool:
    """Whether a call of this tool counts against a budget per tenant (max_per_tenant_per_day): what run_state then
    sums over every run of the tenant, under the tenant's lock (tenant_budget_lock)."""
    limits = call_limits(workflow, tool_name, tool)
    return any("max_per_tenant_per_day" in limits[tool_name][name] for name in summed_args(limits, tool_name))


def run_state(
    *,
    run: AgentRun,
    tenant_id: str,
    tool_name: str = "",
    turn_writes: list[str] | None = None,
    tool: Tool | None = None,
    actions: list[ProposedAction] | None = None,
) -> RunState:
    """The run's writes as the gate sees them. `tool_name` (and `tool`, whose own limits count too): the call being
    decided, whose budget is summed; `turn_writes`: write tools called earlier in the current turn that have not
    run yet; `actions`: the run's calls in order, when the caller holds them."""
    actions = list(run.actions.order_by("created_at", "id")) if actions is None else actions
    writes = [a for a in actions if a.risk == Risk.WRITE]
    holding = [reason for reason in map(_holding, writes) if reason]
    holding += [f"{name} (called in this turn, not run yet)" for name in turn_writes or []]
    done = set().union(
        *(
            intent_hashes(a)
            for a in writes
            if a.status == ProposedAction.Status.EXECUTED and a.verification == ProposedAction.Verification.PASSED
        )
    )
    failed = [a.tool for a in writes if a.status == ProposedAction.Status.FAILED and not intent_hashes(a) & done]
    workflow = run.workflow
    limits = call_limits(workflow, tool_name, tool)
    names = summed_args(limits, tool_name)
    spent = Spent()
    if names:
        for action in writes:
            if action.tool == tool_name and action.may_have_applied:
                spent_add(spent.run, tool_name, action.args, names)
        if any("max_per_tenant_per_day" in limits[tool_name][name] for name in names):
            window = ProposedAction.objects.filter(
                tool=tool_name,
                run__ticket__tenant_link__tenant_id=tenant_id,
                created_at__gte=timezone.now() - timedelta(hours=WINDOW_HOURS),
                status__in=[
                    ProposedAction.Status.APPROVED,
                    ProposedAction.Status.EXECUTED,
                    ProposedAction.Status.UNCERTAIN,
                    ProposedAction.Status.FAILED,
                ],
            )
            for action in window:
                if action.may_have_applied:
                    spent_add(spent.tenant_window, tool_name, action.args, names)
    return RunState(
        phase=run.phase,
        tenant_id=tenant_id,
        workflow=workflow,
        holding_writes=holding,
        failed_writes=failed,
        has_verified_approved_write=any(
            a.decided_by_id is not None
            and a.status == ProposedAction.Status.EXECUTED
            and a.verification == ProposedAction.Verification.PASSED
            for a in writes
        ),
        spent=spent,
    )


def _invalid(tool: Tool, args: dict[str, Any]) -> Decision | None:
    parsed = tool.parse_args(args)
    if not isinstance(parsed, Observation):
        return None
    errors = parsed.meta.get("errors", [])
    listing = "; ".join(f"{e['field'] or '(arguments)'}: {e['message']}" for e in errors) or "invalid"
    return Decision(
        Verdict.REFUSE,
        INVALID_ARGUMENTS.format(tool=tool.name, errors=listing),
        error_type=ErrorType.INVALID_ARGUMENTS,
        meta={"errors": errors},
    )


def _repeat(tool: Tool, earlier: ProposedAction) -> Decision | None:
    """A call the run already made with the same tool and arguments: never a second effect."""
    status = earlier.status
    if status == ProposedAction.Status.UNCERTAIN and not tool.idempotent_sends:
        return Decision(Verdict.REFUSE, REPEAT_UNKNOWN.format(tool=earlier.tool))
    clean = bool((earlier.execution_result or {}).get("ok"))
    if (
        status == ProposedAction.Status.EXECUTED
        and tool.risk == Risk.WRITE
        and earlier.verification == ProposedAction.Verification.PASSED
        and clean
    ):
        # It ran, was answered and verified: the model knows. Doing it again is a new write, and only a human may
        # decide that it should happen twice (sent with a key of its own).
        return Decision(Verdict.PROPOSE, REPEAT_NEEDS_REVIEW.format(tool=earlier.tool), fresh_key=True)
    if status == ProposedAction.Status.EXECUTED:
        return Decision(Verdict.REPEAT, REPEAT_ANSWERED)
    if status == ProposedAction.Status.FAILED and earlier.verification == ProposedAction.Verification.FAILED:
        return Decision(Verdict.REPEAT, REPEAT_ANSWERED)
    if status == ProposedAction.Status.REJECTED:
        reason = earlier.decision_reason or "(none given)"
        return Decision(Verdict.REFUSE, REPEAT_REJECTED.format(tool=earlier.tool, reason=reason))
    if status == ProposedAction.Status.RESPONDED:
        feedback = earlier.decision_reason or "(none given)"
        return Decision(Verdict.REFUSE, REPEAT_RESPONDED.format(tool=earlier.tool, feedback=feedback))
    if status in (ProposedAction.Status.PENDING, ProposedAction.Status.APPROVED):
        return Decision(Verdict.REFUSE, REPEAT_WAITING.format(tool=earlier.tool, state=HOLDING_STATES[status]))
    return None  # failed or of unknown outcome: a new attempt, sent with the first one's idempotency key


def _preapproved(state: RunState, tool: Tool, tool_name: str, args: dict[str, Any]) -> Decision | None:
    workflow = state.workflow
    if state.phase != Workflow.Phase.AUTONOMOUS or workflow is None:
        return None
    if tool_name not in (workflow.preapproved_tools or []):
        return None
    over = limits_exceeded(call_limits(workflow, tool_name, tool), tool_name, args, state.spent)
    if over:
        return Decision(Verdict.PROPOSE, OVER_LIMIT.format(why=over))
    return Decision(Verdict.EXECUTE, "Pre-approved for this autonomous workflow, within its limits.")


def gate_decide(
    *,
    tool: Tool | None,
    name: str,
    args: dict[str, Any],
    state: RunState,
    available: list[str],
    approved: ProposedAction | None = None,
    earlier: ProposedAction | None = None,
) -> Decision:
    """Decide one call. `approved`: the action this call already is (decided by a reviewer or pre-approved);
    `earlier`: the run's first call with the same tool and arguments, if there is one."""
    if tool is None:
        return Decision(Verdict.REFUSE, UNKNOWN_TOOL.format(name=name, available=", ".join(sorted(available))))
    asked = tool.tenant_named(args)
    if asked is not None and asked != state.tenant_id:
        return Decision(Verdict.REFUSE, OTHER_TENANT.format(bound=state.tenant_id, asked=asked))
    invalid = _invalid(tool, args)
    if invalid is not None:
        return invalid
    if tool.risk != Risk.HELPDESK and not state.tenant_id:
        return Decision(Verdict.REFUSE, NO_TENANT)
    if state.phase == Workflow.Phase.SHADOW:
        return Decision(Verdict.DRY_RUN, "Shadow phase: recorded as a dry run, never executed.")
    if approved is None and earlier is not None:
        repeat = _repeat(tool, earlier)
        if repeat is not None:
            return repeat
    if tool.customer_facing and state.holding_writes:
        return Decision(Verdict.REFUSE, WRITES_HOLD_REPLY.format(writes=", ".join(state.holding_writes)))
    if approved is not None:
        if approved.status != ProposedAction.Status.APPROVED:
            return Decision(Verdict.PROPOSE, NOT_APPROVED)
        actual = canonical_hash(args)
        if actual != approved.approved_args_hash:
            return Decision(
                Verdict.REFUSE, APPROVAL_MISMATCH.format(actual=actual[:12], approved=approved.approved_args_hash[:12])
            )
        return Decision(Verdict.EXECUTE, "Approved by a reviewer.")
    if tool.customer_facing and state.failed_writes:
        return Decision(Verdict.PROPOSE, FAILED_WRITE_NEEDS_REVIEW.format(writes=", ".join(state.failed_writes)))
    if tool.risk == Risk.READ:
        return Decision(Verdict.EXECUTE, "Reads run without approval outside shadow.")
    if tool.context_only:
        return Decision(Verdict.EXECUTE, "Context notes and routing run without approval outside shadow.")
    if tool.customer_facing:
        if state.phase == Workflow.Phase.AUTONOMOUS or state.has_verified_approved_write:
            return Decision(Verdict.EXECUTE, "Every write in this run is verified.")
        return Decision(Verdict.PROPOSE, "Triage: a reply without a verified, approved fix waits for a reviewer.")
    preapproved = _preapproved(state, tool, name, args)
    if preapproved is not None:
        return preapproved
    return Decision(Verdict.PROPOSE, "Writes wait for a reviewer's approval in this phase.")
