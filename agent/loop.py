"""The ReAct loop: think -> act (through the gate) -> observe -> persist, until a final answer or a pause.

One call of run_advance does at most one model turn, so a run waiting on the model holds no worker between
turns, and a worker that dies mid-turn leaves a transcript the next call resumes from. Every step is persisted
the moment it happens. Network calls (model, tools) never run inside a database transaction.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

from django.conf import settings

from agent import prompts, telemetry
from agent.gate import Verdict, gate_decide, run_state
from agent.llm import ESCALATE_TOOL, ModelTurn, engine_get
from agent.models import AgentRun, ProposedAction, Step
from agent.services import (
    FINAL_STATUSES,
    agent_run_claim,
    agent_run_escalate,
    agent_run_finish,
    agent_run_record_turn,
    agent_run_release,
    agent_run_renew_lease,
    agent_run_transition,
    proposed_action_create,
    proposed_action_record_execution,
    proposed_action_start_execution,
    step_append,
)
from agent.tools import all_tools, get_tool
from agent.tools.base import ErrorType, Observation, Risk, ToolContext
from audit.models import AuditEvent
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

REJECTED = "A reviewer rejected this call. Their reason: {reason}"
DRY_RUN = "Shadow phase: this call was recorded as a dry run and not executed. Continue as if planning."
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
        idempotency_key=f"agent-console-{action.idempotency_key}" if action else None,
    )


def _execute(run: AgentRun, action: ProposedAction) -> Observation:
    """Run an allowed call; for a write, verify it by re-reading state before anything else happens."""
    tool = get_tool(action.tool)
    assert tool is not None
    _hold(run)
    action = proposed_action_start_execution(action=action)  # the start time survives a crash and a replay
    ctx = _context(run, action=action)
    observation = tool.invoke(action.args, ctx)
    verification = None
    if observation.ok and tool.risk == Risk.WRITE:
        _hold(run)
        verification = tool.invoke_verify(action.args, ctx, observation, action.execution_started_at)
    proposed_action_record_execution(action=action, observation=observation, verification=verification)
    if verification is not None and not verification.ok:
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            verification.message,
            result=observation.data,
            verification=verification.to_dict(),
        )
    if verification is not None:
        return Observation(ok=True, data=observation.data, meta={**observation.meta, "verified": verification.data})
    return observation


def _recorded(action: ProposedAction) -> Observation | None:
    """The observation of a call already decided or run, so a resumed run never runs it twice."""
    status = action.status
    if status == ProposedAction.Status.PENDING:
        return None
    if status == ProposedAction.Status.REJECTED:
        return Observation.failure("rejected", REJECTED.format(reason=action.decision_reason or "(none given)"))
    if status == ProposedAction.Status.RESPONDED:
        return Observation.failure("reviewer_response", RESPONDED.format(feedback=action.decision_reason))
    if status == ProposedAction.Status.WITHDRAWN:
        return Observation.failure("withdrawn", WITHDRAWN)
    if status == ProposedAction.Status.DRY_RUN:
        return Observation.success({"dry_run": True, "message": DRY_RUN})
    if status in (ProposedAction.Status.EXECUTED, ProposedAction.Status.FAILED):
        recorded = action.execution_result or {}
        if action.verification == ProposedAction.Verification.FAILED:
            message = (action.verification_result or {}).get("message", "verification failed")
            return Observation.failure(ErrorType.VERIFICATION_FAILED, message)
        return Observation(
            ok=bool(recorded.get("ok")),
            data=recorded.get("data"),
            error_type=recorded.get("error_type", ""),
            message=recorded.get("message", ""),
            retryable=bool(recorded.get("retryable")),
        )
    return None  # APPROVED: still to run


def _dispatch(run: AgentRun, step: Step, rationale: str) -> Observation | None:
    """Decide and, if allowed, run one tool call. None means it waits for a reviewer."""
    action = run.actions.filter(tool_call_id=step.tool_call_id).first()
    if action is not None:
        recorded = _recorded(action)
        if recorded is not None or action.status == ProposedAction.Status.PENDING:
            return recorded
    tools = all_tools()
    tool = tools.get(step.tool_name)
    args = action.args if action is not None else (step.tool_input or {})
    state = run_state(run=run, tenant_id=run.ticket.tenant_id)
    decision = gate_decide(
        tool=tool, name=step.tool_name, args=args, state=state, available=list(tools), approved=action
    )
    if decision.verdict == Verdict.REFUSE:
        audit_event_record(
            verb="gate.refused",
            obj=run,
            payload={"tool": step.tool_name, "args": args, "reason": decision.reason, "phase": run.phase},
            actor_kind=AuditEvent.ActorKind.AGENT,
        )
        return Observation.failure(ErrorType.REFUSED, decision.reason)
    if action is None:
        status = {
            Verdict.DRY_RUN: ProposedAction.Status.DRY_RUN,
            Verdict.PROPOSE: ProposedAction.Status.PENDING,
            Verdict.EXECUTE: ProposedAction.Status.APPROVED,
        }[decision.verdict]
        action = proposed_action_create(
            run=run, step=step, tool=tool, args=args, rationale=rationale, status=status, reason=decision.reason
        )
        if decision.verdict != Verdict.EXECUTE:
            return _recorded(action)
    return _execute(run, action)


def _pending_steps(run: AgentRun) -> tuple[list[Step], str]:
    """Action steps of the latest turn that have no observation yet, and that turn's thought."""
    steps = list(run.steps.filter(turn=run.turns))
    observed = {s.tool_call_id for s in steps if s.kind == Step.Kind.OBSERVATION}
    thought = next((s.content for s in steps if s.kind == Step.Kind.THOUGHT), "")
    return [s for s in steps if s.kind == Step.Kind.ACTION and s.tool_call_id not in observed], thought


def _act(run: AgentRun) -> Outcome | None:
    """Dispatch the latest turn's calls. Returns an outcome when the run must stop here."""
    pending, thought = _pending_steps(run)
    waiting = False
    for step in pending:
        if step.tool_name == ESCALATE_TOOL:
            agent_run_escalate(
                run=run, reason=str((step.tool_input or {}).get("reason", "")) or "The agent asked for a human."
            )
            return Outcome.DONE
        with telemetry.tool_call(step) as traced:
            observation = _dispatch(run, step, thought)
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
        if run.status != AgentRun.Status.AWAITING_APPROVAL:
            agent_run_transition(
                run=run, status=AgentRun.Status.AWAITING_APPROVAL, reason="A proposed action awaits a reviewer."
            )
        return Outcome.PAUSED
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
    _hold(run)  # a turn that outlived the lease is dropped: the worker now holding the run asks again
    agent_run_record_turn(run=run, turn=turn, engine=engine.name)
    return turn


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
        _read_ticket(run)
        _hold(run)
        stop = _act(run)
        if stop is not None:
            return stop
        bound = _bound_hit(run)
        if bound:
            agent_run_escalate(run=run, reason=f"Stopped because {bound}.")
            return Outcome.DONE
        turn = _think(run)
        run.refresh_from_db(fields=RUN_STATE_FIELDS)
        if not turn.tool_calls:
            agent_run_finish(run=run, answer=turn.text)
            return Outcome.DONE
        return _act(run) or Outcome.CONTINUE
    except LeaseLost:
        logger.warning("run %s: lease lost mid-turn; another worker carries on", run_id)
        return Outcome.LOST
    finally:
        agent_run_release(run_id=run_id, token=run.lease_token, active_ms=int((time.monotonic() - started) * 1000))
