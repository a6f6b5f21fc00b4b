"""The ReAct loop: think -> act (through the gate) -> observe -> persist, until a final answer or a pause.

One call of run_advance does at most one model turn, so a run waiting on the model holds no worker between
turns, and a worker that dies mid-turn leaves a transcript the next call resumes from. Every step is persisted
the moment it happens. Network calls (model, tools) never run inside a database transaction.

A call is recorded before it is sent (its action, then its start time), so a call whose outcome was never
recorded — the worker died, the answer timed out or came back in a shape we do not know — is reconciled by
re-reading state before anything else happens, and is never sent blindly a second time.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.utils import timezone

from agent import prompts, telemetry
from agent.gate import REPEAT_ANSWERED, Decision, Verdict, gate_decide, intent_hash, intent_hashes, run_state
from agent.llm import ESCALATE_TOOL, ModelTurn, engine_get
from agent.models import AgentRun, ProposedAction, Step
from agent.services import (
    FINAL_STATUSES,
    agent_run_await_decisions,
    agent_run_claim,
    agent_run_escalate,
    agent_run_finish,
    agent_run_record_turn,
    agent_run_release,
    agent_run_renew_lease,
    agent_run_transition,
    proposed_action_create,
    proposed_action_settle,
    proposed_action_start_execution,
    step_append,
    tenant_budget_lock,
)
from agent.tools import all_tools, get_tool
from agent.tools.base import ErrorType, Observation, Reconciled, Risk, Tool, ToolContext
from agent.versions import agent_run_pin_version
from audit.models import AuditEvent
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

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
FINISHED_WITH_UNKNOWN = (
    "The agent finished while the outcome of {writes} is unknown; a human must check the company's systems."
)
ABNORMAL_STOP = "The model's turn ended with stopReason {stop!r}: {why}. Its output was not used{calls}."
RESPONDED = "A reviewer did not run this call and answered instead. Continue from their feedback: {feedback}"
WITHDRAWN = "This call was withdrawn: a reviewer took the ticket over, and the run has ended."


# What a turn changes on the run; refreshing only these keeps its ticket, tenant and workflow loaded.
RUN_STATE_FIELDS = ["status", "status_reason", "turns", "tokens_in", "tokens_out", "engine", "updated_at"]


class LeaseLost(Exception):
    """Another worker took the run while this one waited on a slow call: stop here, change nothing more."""


def _hold(run: AgentRun) -> None:
    if not agent_run_renew_lease(run_id=run.pk, token=run.lease_token, lease_seconds=settings.AGENT_LEASE_SECONDS):
        raise LeaseLost


class Outcome(StrEnum):
    CONTINUE = "continue"  # more turns to go: enqueue the next advance
    PAUSED = "paused"  # waiting for a reviewer
    DONE = "done"  # completed or escalated
    BUSY = "busy"  # another worker holds the run
    LOST = "lost"  # another worker took the run over mid-turn; it carries on, this one stops


def _tool_specs() -> list[dict[str, Any]]:
    return [tool.spec() for tool in all_tools().values()] + [prompts.ESCALATE_SPEC]


def _context(run: AgentRun, *, action: ProposedAction | None = None) -> ToolContext:
    return ToolContext(
        ticket_id=run.ticket_id,
        tenant_id=run.ticket.tenant_id,
        run_id=run.pk,
        idempotency_key=f"agent-console-{action.sent_key}" if action else None,
    )


# --- What the model is told about a call ------------------------------------------------------------------------


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            parts.append(f"{key}: {json.dumps(before.get(key))} -> {json.dumps(after.get(key))}")
    return "; ".join(parts) or "no change"


def _with_edit(action: ProposedAction, observation: Observation) -> Observation:
    """Every observation of a call that ran says what ran; after a reviewer's edit, also what they changed."""
    if action.risk == ProposedAction.Risk.READ:
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


def observation_of(action: ProposedAction) -> Observation | None:
    """The observation of a call already decided or run, rebuilt from what was recorded, so a resumed run and a
    repeated call see exactly what the first one saw. None: it is still to be decided or to run."""
    status = action.status
    if status in (ProposedAction.Status.PENDING, ProposedAction.Status.APPROVED):
        return None
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


# --- Running a call ---------------------------------------------------------------------------------------------


def _settle(run: AgentRun, tool: Tool, action: ProposedAction, result: Observation) -> ProposedAction:
    """Record what a call did. A success of a write is verified by re-reading state; an outcome that is not known
    is reconciled the same way before anything else may happen."""
    ctx = _context(run, action=action)
    started = action.execution_started_at or timezone.now()
    if result.ok and tool.has_verifier:
        _hold(run)
        verification = tool.invoke_verify(action.args, ctx, result, started)
        return proposed_action_settle(action=action, status=ProposedAction.Status.EXECUTED, result=result,
                                      verification=verification)  # fmt: skip
    if result.ok:
        return proposed_action_settle(action=action, status=ProposedAction.Status.EXECUTED, result=result)
    if not result.uncertain:
        return proposed_action_settle(action=action, status=ProposedAction.Status.FAILED, result=result)
    _hold(run)
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


def _interrupted_attempt(action: ProposedAction) -> Observation:
    if action.execution_result:
        return Observation.from_dict(action.execution_result)
    return Observation.failure(ErrorType.OUTCOME_UNKNOWN, INTERRUPTED, uncertain=True)


def _execute(run: AgentRun, action: ProposedAction) -> Observation:
    """Run an allowed call. One that already started (or whose outcome is unknown) is reconciled first: applied,
    it is answered from state; of unknown outcome, it is sent again only to a system that applies a request once
    per idempotency key."""
    tool = get_tool(action.tool)
    assert tool is not None
    ctx = _context(run, action=action)
    if action.execution_started_at is not None or action.status == ProposedAction.Status.UNCERTAIN:
        attempt = _interrupted_attempt(action)
        _hold(run)
        state, check = tool.invoke_reconcile(action.args, ctx, attempt, action.execution_started_at or timezone.now())
        if state == Reconciled.APPLIED or (state == Reconciled.UNKNOWN and not tool.idempotent_sends):
            action = _settle_reconciled(action, tool, attempt, state, check)
            observed = observation_of(action)
            assert observed is not None
            return observed
    _hold(run)
    action = proposed_action_start_execution(action=action)  # the start time survives a crash and a replay
    result = tool.invoke(action.args, ctx)
    action = _settle(run, tool, action, result)
    observed = observation_of(action)
    assert observed is not None
    return observed


def _same_intent(run: AgentRun, name: str, args: dict[str, Any]) -> tuple[ProposedAction | None, ProposedAction | None]:
    """The first attempt of the latest call with this tool and these arguments (whose key a retry is sent with),
    and that latest call itself (dry runs aside)."""
    wanted = intent_hash(name, args)
    candidates = run.actions.filter(tool=name).exclude(status=ProposedAction.Status.DRY_RUN)
    matches = [a for a in candidates.order_by("created_at", "id") if wanted in intent_hashes(a)]
    if not matches:
        return None, None
    latest = matches[-1]
    return latest.retry_of or latest, latest


def _reconcile_earlier(run: AgentRun, earlier: ProposedAction) -> ProposedAction:
    """Before a repeat of a call of unknown outcome is decided, ask state again whether the first one took effect."""
    tool = get_tool(earlier.tool)
    if tool is None or earlier.status != ProposedAction.Status.UNCERTAIN:
        return earlier
    _hold(run)
    attempt = _interrupted_attempt(earlier)
    started = earlier.execution_started_at or timezone.now()
    state, check = tool.invoke_reconcile(earlier.args, _context(run, action=earlier), attempt, started)
    if state == Reconciled.UNKNOWN:
        return earlier
    return _settle_reconciled(earlier, tool, attempt, state, check)


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
    recorded = observation_of(earlier)
    assert recorded is not None
    return Observation(
        ok=recorded.ok,
        data=recorded.data,
        error_type=recorded.error_type,
        message=f"{REPEAT_ANSWERED} {recorded.message}".strip(),
        retryable=False,
        meta={**recorded.meta, "repeat_of": earlier.pk},
    )


def _dispatch(run: AgentRun, step: Step, rationale: str, turn_writes: list[str]) -> Observation | None:
    """Decide and, if allowed, run one tool call. None means it waits for a reviewer."""
    action = run.actions.filter(tool_call_id=step.tool_call_id).first()
    if action is not None and action.status != ProposedAction.Status.APPROVED:
        return observation_of(action)  # decided or run already (None: still pending)
    tools = all_tools()
    tool = tools.get(step.tool_name)
    args = action.args if action is not None else (step.tool_input or {})
    tenant_id = run.ticket.tenant_id
    root = earlier = None
    if action is None and tool is not None and tool.risk != Risk.READ and isinstance(args, dict):
        root, earlier = _same_intent(run, step.tool_name, args)
        if earlier is not None:
            earlier = _reconcile_earlier(run, earlier)
    write = tool is not None and tool.risk == Risk.WRITE
    # Deciding and recording are one transaction, under the tenant's lock for writes: two runs of one tenant cannot
    # both spend the last of a per-tenant budget.
    with tenant_budget_lock(tenant_id=tenant_id) if write else nullcontext():
        state = run_state(run=run, tenant_id=tenant_id, tool_name=step.tool_name, turn_writes=turn_writes)
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
                retry_of=None if decision.fresh_key else root,
            )  # fmt: skip
    if decision.verdict == Verdict.REFUSE:
        observation = _refused(run, step.tool_name, args, decision)
        if action is not None:  # an approved call that may no longer run: it is over, and says why
            proposed_action_settle(action=action, status=ProposedAction.Status.FAILED, result=observation)
        return observation
    if decision.verdict == Verdict.REPEAT:
        assert earlier is not None
        return _repeated(run, earlier)
    assert action is not None
    if decision.verdict != Verdict.EXECUTE:
        return observation_of(action)
    return _execute(run, action)


def _pending_steps(run: AgentRun) -> tuple[list[Step], str]:
    """Action steps of the latest turn that have no observation yet, and that turn's thought."""
    steps = list(run.steps.filter(turn=run.turns))
    observed = {s.tool_call_id for s in steps if s.kind == Step.Kind.OBSERVATION}
    thought = next((s.content for s in steps if s.kind == Step.Kind.THOUGHT), "")
    return [s for s in steps if s.kind == Step.Kind.ACTION and s.tool_call_id not in observed], thought


def _writes_still_to_dispatch(run: AgentRun, steps: list[Step]) -> list[str]:
    """Write tools among these calls that have no action yet: they hold a reply of the same turn back."""
    ids = [s.tool_call_id for s in steps]
    started = set(run.actions.filter(tool_call_id__in=ids).values_list("tool_call_id", flat=True))
    writes = []
    for step in steps:
        tool = get_tool(step.tool_name)
        if tool is not None and tool.risk == Risk.WRITE and step.tool_call_id not in started:
            writes.append(step.tool_name)
    return writes


def _act(run: AgentRun) -> Outcome | None:
    """Dispatch the latest turn's calls. Returns an outcome when the run must stop here."""
    pending, thought = _pending_steps(run)
    waiting = False
    for position, step in enumerate(pending):
        if step.tool_name == ESCALATE_TOOL:
            agent_run_escalate(
                run=run, reason=str((step.tool_input or {}).get("reason", "")) or "The agent asked for a human."
            )
            return Outcome.DONE
        tool = get_tool(step.tool_name)
        later = [s for s in pending[position + 1 :] if s.tool_name != ESCALATE_TOOL]
        turn_writes = _writes_still_to_dispatch(run, later) if tool is not None and tool.customer_facing else []
        with telemetry.tool_call(step) as traced:
            observation = _dispatch(run, step, thought, turn_writes)
            traced.observed(observation)
        if observation is None:
            waiting = True
            continue
        _hold(run)
        step_append(
            run=run,
            kind=Step.Kind.OBSERVATION,
            tool_name=step.tool_name,
            tool_call_id=step.tool_call_id,
            tool_output=observation.to_dict(),
        )
        if observation.error_type == ErrorType.VERIFICATION_FAILED:
            agent_run_escalate(run=run, reason=f"Verification of {step.tool_name} failed: {observation.message}")
            return Outcome.DONE
    run.refresh_from_db(fields=RUN_STATE_FIELDS)
    if waiting:
        # A decision may have landed while the turn was still being dispatched: then there is nothing to wait for.
        return Outcome.PAUSED if agent_run_await_decisions(run=run) else Outcome.CONTINUE
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        agent_run_transition(run=run, status=AgentRun.Status.RUNNING, reason="Every proposal of the turn is decided.")
    return None


def _bound_hit(run: AgentRun) -> str:
    if run.steps.count() >= settings.AGENT_MAX_STEPS:
        return f"the run reached its limit of {settings.AGENT_MAX_STEPS} steps"
    if run.tokens_in + run.tokens_out >= settings.AGENT_MAX_TOKENS_PER_RUN:
        return f"the run used its budget of {settings.AGENT_MAX_TOKENS_PER_RUN} tokens"
    if run.active_ms >= settings.AGENT_MAX_ACTIVE_SECONDS * 1000:
        return f"the run worked longer than {settings.AGENT_MAX_ACTIVE_SECONDS} seconds"
    return ""


def _abnormal_reason(turn: ModelTurn) -> str:
    why = turn.abnormal_stop()
    if not why:
        return ""
    calls = f" (its tool calls {', '.join(c.name for c in turn.tool_calls)} were not made)" if turn.tool_calls else ""
    return ABNORMAL_STOP.format(stop=turn.stop_reason or "(none)", why=why, calls=calls)


def _read_ticket(run: AgentRun) -> None:
    """The ticket as of its current version: requester, organization, custom fields, comments. Read from the
    helpdesk only when a webhook reported a newer version than the one held (tickets/helpdesk.py caches it). A
    helpdesk outage does not stop a run that already holds a version to work from."""
    from tickets.helpdesk import HelpdeskError, ticket_context_ensure

    try:
        run.ticket = ticket_context_ensure(ticket=run.ticket)
    except HelpdeskError as exc:
        if not run.ticket.context_version:
            raise
        logger.warning("run %s: the helpdesk could not be read (%s); working from version %s", run.pk, exc.message,
                       run.ticket.context_version)  # fmt: skip


def _think(run: AgentRun) -> ModelTurn:
    _hold(run)
    engine = engine_get()
    conversation = prompts.conversation_build(run=run)
    turn = telemetry.model_call(engine, conversation, _tool_specs())
    # A turn that outlived the lease is dropped: the worker now holding the run asks again.
    if not agent_run_record_turn(run=run, turn=turn, engine=engine.name, abnormal=_abnormal_reason(turn)):
        raise LeaseLost
    return turn


def _unrecorded_stop(run: AgentRun) -> str:
    """The reason of an abnormal stop recorded just before a crash, so the resumed run escalates it."""
    last = run.steps.order_by("-index").first()
    if last is not None and last.kind == Step.Kind.FINAL and isinstance(last.tool_output, dict):
        return str(last.tool_output.get("abnormal_stop") or "")
    return ""


def _finish(run: AgentRun, answer: str) -> Outcome:
    unknown = list(
        run.actions.filter(status=ProposedAction.Status.UNCERTAIN).values_list("tool", flat=True).order_by("id")
    )
    if unknown:
        agent_run_escalate(run=run, reason=FINISHED_WITH_UNKNOWN.format(writes=", ".join(unknown)))
    else:
        agent_run_finish(run=run, answer=answer)
    return Outcome.DONE


def run_advance(*, run_id: int) -> Outcome:
    """Advance a run by at most one model turn. Safe to call again at any point: it resumes."""
    run = agent_run_claim(run_id=run_id, lease_seconds=settings.AGENT_LEASE_SECONDS)
    if run is None:
        finished = not AgentRun.objects.filter(pk=run_id).exclude(status__in=FINAL_STATUSES).exists()
        return Outcome.DONE if finished else Outcome.BUSY
    started = time.monotonic()
    try:
        if run.status == AgentRun.Status.QUEUED:
            run = agent_run_transition(run=run, status=AgentRun.Status.RUNNING)
        run = agent_run_pin_version(run=run)
        _read_ticket(run)
        _hold(run)
        stopped = _unrecorded_stop(run)
        if stopped:
            agent_run_escalate(run=run, reason=stopped)
            return Outcome.DONE
        stop = _act(run)
        if stop is not None:
            return stop
        bound = _bound_hit(run)
        if bound:
            agent_run_escalate(run=run, reason=f"Stopped because {bound}.")
            return Outcome.DONE
        turn = _think(run)
        run.refresh_from_db(fields=RUN_STATE_FIELDS)
        abnormal = _abnormal_reason(turn)
        if abnormal:
            agent_run_escalate(run=run, reason=abnormal)
            return Outcome.DONE
        if not turn.tool_calls:
            return _finish(run, turn.text)
        return _act(run) or Outcome.CONTINUE
    except LeaseLost:
        logger.warning("run %s: lease lost mid-turn; another worker carries on", run_id)
        return Outcome.LOST
    finally:
        agent_run_release(run_id=run_id, token=run.lease_token, active_ms=int((time.monotonic() - started) * 1000))
