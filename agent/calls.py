"""One tool call of the model, through the gate: refused, proposed, recorded as a dry run, or executed and
settled; and what the model is told of it (its observation).

A call is recorded before it is sent (its action, then its start time), so a call whose outcome was never
recorded — the worker died, the answer timed out or came back in a shape we do not know — is reconciled by
re-reading state before anything else happens, and is never sent blindly a second time."""

from __future__ import annotations

import json
from contextlib import nullcontext
from enum import StrEnum
from typing import Any

from django.utils import timezone

from agent.catalogue import get_tool, workflow_tools
from agent.gate import (
    REPEAT_ANSWERED,
    Decision,
    Verdict,
    canonical_args,
    gate_decide,
    intent_hash,
    intent_hashes,
    run_state,
    tenant_budget_counted,
)
from agent.models import AgentRun, ProposedAction, Step
from agent.policy import Risk
from agent.prompts import ticket_comments_forget
from agent.services.actions import (
    proposed_action_create,
    proposed_action_settle,
    proposed_action_settle_later,
    proposed_action_start_execution,
    tenant_budget_lock,
)
from agent.services.leases import Advance, lease_hold
from agent.services.transcript import action_held, run_actions
from agent.tools.base import ErrorType, Observation, Reconciled, Tool, ToolContext
from audit.models import AuditEvent
from audit.services import audit_event_record

REJECTED = "A reviewer rejected this call. Their reason: {reason}"
DRY_RUN = "Shadow phase: this call was recorded as a dry run and not executed. Continue as if planning."
INTERRUPTED = "The worker stopped while this call was being made; its outcome was never recorded."
RECONCILED_APPLIED = (
    "The answer to this call was lost or unreadable ({first}), but re-reading state shows it took effect."
)
RECONCILED_NOT_APPLIED = (
    " Re-reading state shows it did not take effect. Calling it again with the same arguments sends it with the "
    "same idempotency key, so it can never happen twice."
)
OUTCOME_UNKNOWN = (
    "{tool} may or may not have taken effect: {first} Re-reading state could not tell ({check}). It is not sent "
    "again blindly. Do not tell the customer it is done; escalate to a human, or call it again with the same "
    "arguments later to check once more."
)
REVIEWER_EDITED = (
    "A reviewer edited this call before approving it ({changes}). What ran: {tool} {ran}. Tell the customer what "
    "ran, not what you proposed."
)
RESPONDED = "A reviewer did not run this call and answered instead. Continue from their feedback: {feedback}"
WITHDRAWN = "This call was withdrawn: a reviewer took the ticket over, and the run has ended."


class Undecided(StrEnum):
    """A call that has no observation yet, and what comes next for it."""

    REVIEWER = "reviewer"  # proposed: it waits for a reviewer's decision
    RUN = "run"  # allowed (by a reviewer, a pre-approval or the gate): it runs now


def tool_context(run: AgentRun, *, action: ProposedAction | None = None) -> ToolContext:
    return ToolContext(
        ticket_id=run.ticket_id,
        tenant_id=run.ticket.tenant_id,
        run_id=run.pk,
        idempotency_key=f"agent-console-{action.sent_key}" if action else None,
    )


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            parts.append(f"{key}: {json.dumps(before.get(key))} -> {json.dumps(after.get(key))}")
    return "; ".join(parts) or "no change"


def _with_edit(action: ProposedAction, observation: Observation) -> Observation:
    """Every observation of a call that ran says what ran; after a reviewer's edit, also what they changed."""
    if action.risk == Risk.READ:
        return observation
    meta: dict[str, Any] = {"executed_args": action.args}
    if action.original_args is None:
        return observation.with_meta(**meta)
    edit = REVIEWER_EDITED.format(
        changes=_changes(action.original_args, action.args), tool=action.tool, ran=json.dumps(action.args)
    )
    meta["reviewer_edit"] = {"proposed": action.original_args, "approved": action.args}
    message = f"{edit} {observation.message}".strip()
    return Observation(
        ok=observation.ok,
        data=observation.data,
        error_type=observation.error_type,
        message=message,
        retryable=observation.retryable,
        meta={**observation.meta, **meta},
        uncertain=observation.uncertain,
    )


def observation_of(action: ProposedAction) -> Observation | Undecided:
    """The observation of a call already decided or run, rebuilt from what was recorded, so a resumed run and a
    repeated call see exactly what the first one saw; or what the call still waits for."""
    status = action.status
    if status == ProposedAction.Status.PENDING:
        return Undecided.REVIEWER
    if status == ProposedAction.Status.APPROVED:
        return Undecided.RUN
    if status == ProposedAction.Status.REJECTED:
        return Observation.failure("rejected", REJECTED.format(reason=action.decision_reason or "(none given)"))
    if status == ProposedAction.Status.RESPONDED:
        return Observation.failure("reviewer_response", RESPONDED.format(feedback=action.decision_reason))
    if status == ProposedAction.Status.WITHDRAWN:
        return Observation.failure("withdrawn", WITHDRAWN)
    if status == ProposedAction.Status.DRY_RUN:
        return Observation.success({"dry_run": True, "message": DRY_RUN})
    raw = Observation.from_dict(action.execution_result or {})
    check = Observation.from_dict(action.verification_result or {})
    if status == ProposedAction.Status.UNCERTAIN:
        message = OUTCOME_UNKNOWN.format(tool=action.tool, first=raw.message, check=check.message or "no answer")
        observed = Observation.failure(ErrorType.OUTCOME_UNKNOWN, message, uncertain=True, **raw.meta)
    elif action.verification == ProposedAction.Verification.FAILED:
        observed = Observation.failure(ErrorType.VERIFICATION_FAILED, check.message or "verification failed")
    elif status == ProposedAction.Status.EXECUTED and action.verification == ProposedAction.Verification.PASSED:
        if raw.ok:
            observed = Observation(ok=True, data=raw.data, meta={**raw.meta, "verified": check.data})
        else:  # the answer was lost or unreadable; state proves the effect
            observed = Observation(
                ok=True,
                data=check.data,
                message=RECONCILED_APPLIED.format(first=raw.error_type or "no answer"),
                meta={"reconciled": True, "verified": check.data},
            )
    elif status == ProposedAction.Status.FAILED and raw.uncertain:
        observed = Observation.failure(raw.error_type, raw.message + RECONCILED_NOT_APPLIED, retryable=True, **raw.meta)
    else:
        observed = raw
    return _with_edit(action, observed)


def _settle(run: AgentRun, tool: Tool, action: ProposedAction, result: Observation, advance: Advance) -> ProposedAction:
    """Record what a call did. A success of a write is verified by re-reading state; an outcome that is not known
    is reconciled the same way before anything else may happen. A call whose outcome is known is settled with its
    observation, in the loop's next statement (proposed_action_settle_later; the loop observes every call it ran)."""
    ctx = tool_context(run, action=action)
    started = action.execution_started_at or timezone.now()
    if result.ok and tool.has_verifier:
        lease_hold(run)
        verification = tool.invoke_verify(action.args, ctx, result, started)
        return proposed_action_settle_later(advance=advance, action=action, status=ProposedAction.Status.EXECUTED,
                                            result=result, verification=verification)  # fmt: skip
    if result.ok:
        return proposed_action_settle_later(advance=advance, action=action, status=ProposedAction.Status.EXECUTED,
                                            result=result)  # fmt: skip
    if not result.uncertain:
        return proposed_action_settle_later(advance=advance, action=action, status=ProposedAction.Status.FAILED,
                                            result=result)  # fmt: skip
    lease_hold(run)
    state, check = tool.invoke_reconcile(action.args, ctx, result, started)
    return _settle_reconciled(action, tool, result, state, check)


def _settle_reconciled(
    action: ProposedAction, tool: Tool, result: Observation, state: Reconciled, check: Observation
) -> ProposedAction:
    if state == Reconciled.APPLIED and tool.has_verifier:
        return proposed_action_settle(action=action, status=ProposedAction.Status.EXECUTED, result=result,
                                      verification=check)  # fmt: skip
    if state == Reconciled.APPLIED:  # e.g. the comment is on the ticket: that is the call's result
        return proposed_action_settle(action=action, status=ProposedAction.Status.EXECUTED, result=check)
    if state == Reconciled.NOT_APPLIED:
        return proposed_action_settle(action=action, status=ProposedAction.Status.FAILED, result=result,
                                      reconciliation=check)  # fmt: skip
    return proposed_action_settle(action=action, status=ProposedAction.Status.UNCERTAIN, result=result,
                                  reconciliation=check)  # fmt: skip


def _held(run: AgentRun, action: ProposedAction) -> ProposedAction:
    """A call just settled, kept current among the run's held calls (run_actions)."""
    action_held(run, action)
    return action


def _settled(action: ProposedAction) -> Observation:
    """The observation of a call that has just been settled (or was, long ago): never undecided."""
    observed = observation_of(action)
    assert isinstance(observed, Observation), f"action {action.pk} is {action.status}, not settled"
    return observed


def _interrupted_attempt(action: ProposedAction) -> Observation:
    if action.execution_result:
        return Observation.from_dict(action.execution_result)
    return Observation.failure(ErrorType.OUTCOME_UNKNOWN, INTERRUPTED, uncertain=True)


def _execute(run: AgentRun, action: ProposedAction, advance: Advance) -> Observation:
    """Run an allowed call. One that already started (or whose outcome is unknown) is reconciled first: applied,
    it is answered from state; of unknown outcome, it is sent again only to a system that applies a request once
    per idempotency key."""
    tool = get_tool(action.tool)
    assert tool is not None
    ctx = tool_context(run, action=action)
    if action.execution_started_at is not None or action.status == ProposedAction.Status.UNCERTAIN:
        attempt = _interrupted_attempt(action)
        lease_hold(run)
        state, check = tool.invoke_reconcile(action.args, ctx, attempt, action.execution_started_at or timezone.now())
        if state == Reconciled.APPLIED or (state == Reconciled.UNKNOWN and not tool.idempotent_sends):
            return _settled(_held(run, _settle_reconciled(action, tool, attempt, state, check)))
    # A take-over, however recent, stops the call before it starts: the lease is renewed (always) with the start
    # time, which survives a crash and a replay.
    action = proposed_action_start_execution(action=action, lease_of=run)
    result = tool.invoke(action.args, ctx)
    if tool.risk == Risk.HELPDESK:  # it may have posted a comment: the next turn reads them again
        ticket_comments_forget(run.ticket)
    return _settled(_held(run, _settle(run, tool, action, result, advance)))


def _same_intent(
    actions: list[ProposedAction], name: str, args: dict[str, Any]
) -> tuple[ProposedAction | None, ProposedAction | None]:
    """The first attempt of the latest call with this tool and these arguments (whose key a retry is sent with),
    and that latest call itself (dry runs aside), among the run's calls in order."""
    wanted = intent_hash(name, args)
    candidates = [a for a in actions if a.tool == name and a.status != ProposedAction.Status.DRY_RUN]
    matches = [a for a in candidates if wanted in intent_hashes(a)]
    if not matches:
        return None, None
    latest = matches[-1]
    return latest.retry_of or latest, latest


def _reconcile_earlier(run: AgentRun, earlier: ProposedAction) -> ProposedAction:
    """Before a repeat of a call of unknown outcome is decided, ask state again whether the first one took effect."""
    tool = get_tool(earlier.tool)
    if tool is None or earlier.status != ProposedAction.Status.UNCERTAIN:
        return earlier
    lease_hold(run)
    attempt = _interrupted_attempt(earlier)
    started = earlier.execution_started_at or timezone.now()
    state, check = tool.invoke_reconcile(earlier.args, tool_context(run, action=earlier), attempt, started)
    if state == Reconciled.UNKNOWN:
        return earlier
    return _held(run, _settle_reconciled(earlier, tool, attempt, state, check))


def _refused(run: AgentRun, name: str, args: dict[str, Any], decision: Decision) -> Observation:
    audit_event_record(
        verb="gate.refused",
        obj=run,
        payload={"tool": name, "args": args, "reason": decision.reason, "phase": run.phase},
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    return Observation.failure(decision.error_type, decision.reason, **decision.meta)


def _repeated(run: AgentRun, earlier: ProposedAction) -> Observation:
    audit_event_record(
        verb="gate.repeat_answered",
        obj=run,
        payload={"tool": earlier.tool, "args_hash": earlier.args_hash, "action": earlier.pk},
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    recorded = _settled(earlier)
    return Observation(
        ok=recorded.ok,
        data=recorded.data,
        error_type=recorded.error_type,
        message=f"{REPEAT_ANSWERED} {recorded.message}".strip(),
        retryable=False,
        meta={**recorded.meta, "repeat_of": earlier.pk},
    )


def call_dispatch(
    run: AgentRun, step: Step, rationale: str, turn_writes: list[str], advance: Advance
) -> Observation | Undecided:
    """Decide one tool call through the gate and, if allowed, run it: its observation, or Undecided.REVIEWER
    when it waits for a reviewer. A call decided or run before (a resumed run) answers from what was recorded.
    `advance`: the loop's advance, which holds the run's lease (a proposal is conditional on it) and a call's
    settlement for its observation's statement."""
    # The run's calls so far, read once: this call's own action (a resumed run) and the intent of earlier ones.
    actions = run_actions(run)
    action = next((a for a in actions if a.tool_call_id == step.tool_call_id), None)
    if action is not None:
        recorded = observation_of(action)
        if recorded is not Undecided.RUN:
            return recorded  # decided or run already, or still with a reviewer
    tools = workflow_tools(run.workflow)  # a tool outside the workflow's own set is refused as unknown
    tool = tools.get(step.tool_name)
    args = action.args if action is not None else canonical_args(step.tool_input or {})
    tenant_id = run.ticket.tenant_id
    root = earlier = None
    if action is None and tool is not None and tool.risk != Risk.READ and isinstance(args, dict):
        root, earlier = _same_intent(actions, step.tool_name, args)
        if earlier is not None:
            earlier = _reconcile_earlier(run, earlier)
    write = tool is not None and tool.risk == Risk.WRITE
    # Deciding and recording are one transaction under the tenant's lock for a write counted against a per-tenant
    # budget: two runs of one tenant cannot both spend the last of it. Other calls have nothing to lock, and their
    # record (the action with its audit entry) is one statement, or one transaction (audited_change).
    counted = write and tenant_budget_counted(run.workflow, step.tool_name, tool)
    with tenant_budget_lock(tenant_id=tenant_id) if counted else nullcontext():
        state = run_state(run=run, tenant_id=tenant_id, tool_name=step.tool_name, turn_writes=turn_writes, tool=tool,
                          actions=actions)  # fmt: skip
        decision = gate_decide(
            tool=tool,
            name=step.tool_name,
            args=args if isinstance(args, dict) else {},
            state=state,
            available=list(tools),
            approved=action,
            earlier=earlier,
        )
        if decision.verdict in (Verdict.EXECUTE, Verdict.PROPOSE, Verdict.DRY_RUN) and action is None:
            assert tool is not None
            status = {
                Verdict.DRY_RUN: ProposedAction.Status.DRY_RUN,
                Verdict.PROPOSE: ProposedAction.Status.PENDING,
                Verdict.EXECUTE: ProposedAction.Status.APPROVED,
            }[decision.verdict]
            action = proposed_action_create(
                run=run, step=step, tool=tool, args=args, rationale=rationale, status=status, reason=decision.reason,
                retry_of=None if decision.fresh_key else root, advance=advance,
            )  # fmt: skip
            action_held(run, action)
    if decision.verdict == Verdict.REFUSE:
        observation = _refused(run, step.tool_name, args, decision)
        if action is not None:  # an approved call that may no longer run: it is over, and says why
            _held(run, proposed_action_settle(action=action, status=ProposedAction.Status.FAILED, result=observation))
        return observation
    if decision.verdict == Verdict.REPEAT:
        assert earlier is not None
        return _repeated(run, earlier)
    assert action is not None
    if decision.verdict != Verdict.EXECUTE:
        return observation_of(action)  # a dry run's observation, or a proposal waiting for a reviewer
    return _execute(run, action, advance)
