"""The ReAct loop: think -> act (through the gate) -> observe -> persist, until a final answer or a pause.

One call of run_advance does at most one model turn, so a run waiting on the model holds no worker between
turns, and a worker that dies mid-turn leaves a transcript the next call resumes from. Every step is persisted
the moment it happens. Network calls (model, tools) never run inside a database transaction. How one call goes
through the gate is agent/calls.py.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from typing import Any

from django.conf import settings

from agent import prompts, telemetry
from agent.calls import Undecided, call_dispatch
from agent.catalogue import get_tool, workflow_tools
from agent.gate import run_state
from agent.lifecycle import RUN_FINAL
from agent.llm import engine_get
from agent.llm.conversation import ESCALATE_TOOL, ModelTurn
from agent.models import AgentRun, ProposedAction, Step
from agent.policy import Risk
from agent.prompts import ticket_comments_forget, ticket_comments_held, ticket_comments_hold
from agent.services.actions import agent_run_await_decisions, settlement_take
from agent.services.leases import (
    Advance,
    LeaseLost,
    agent_run_claim,
    agent_run_release,
    lease_hold,
    lease_renewal,
    lease_renewed,
)
from agent.services.observations import observation_record
from agent.services.runs import agent_run_escalate, agent_run_finish, agent_run_finish_with_turn, agent_run_transition
from agent.services.transcript import (
    agent_run_record_turn,
    run_actions,
    run_steps,
    step_append,
)
from agent.tools.base import ErrorType, Observation
from agent.versions import agent_run_pin_version, workflow_version_to_pin
from agentconsole import rawsql
from agentconsole.errors import InvalidTransition
from audit.services import Also
from tickets.helpdesk import (
    HelpdeskError,
    LocalHelpdesk,
    helpdesk_for,
    ticket_context_ensure,
    ticket_context_local_record,
    ticket_context_local_recorded,
)
from tickets.snapshot import TicketSnapshot

logger = logging.getLogger(__name__)
FINISHED_WITH_UNKNOWN = (
    "The agent finished while the outcome of {writes} is unknown; a human must check the company's systems."
)
FINISHED_WITH_UNPROVEN = (
    "The agent finished while nothing proves these writes of the run took effect: {writes}. A human must check "
    "the company's systems and decide what the customer is told."
)
RESUMED = "Every proposal of the turn is decided."
ABNORMAL_STOP = "The model's turn ended with stopReason {stop!r}: {why}. Its output was not used{calls}."


class Outcome(StrEnum):
    CONTINUE = "continue"  # more turns to go: enqueue the next advance
    PAUSED = "paused"  # waiting for a reviewer
    DONE = "done"  # completed or escalated
    BUSY = "busy"  # another worker holds the run
    LOST = "lost"  # another worker took the run over mid-turn; it carries on, this one stops


def _tool_specs(run: AgentRun) -> list[dict[str, Any]]:
    return [tool.spec() for tool in workflow_tools(run.workflow).values()] + [prompts.ESCALATE_SPEC]


def _pending_steps(run: AgentRun) -> tuple[list[Step], str]:
    """Action steps of the latest turn that have no observation yet, and that turn's thought."""
    steps = [s for s in run_steps(run) if s.turn == run.turns]
    observed = {s.tool_call_id for s in steps if s.kind == Step.Kind.OBSERVATION}
    thought = next((s.content for s in steps if s.kind == Step.Kind.THOUGHT), "")
    return [s for s in steps if s.kind == Step.Kind.ACTION and s.tool_call_id not in observed], thought


def _writes_still_to_dispatch(run: AgentRun, steps: list[Step]) -> list[str]:
    """Write tools among these calls that have no action yet: they hold a reply of the same turn back."""
    started = {a.tool_call_id for a in run_actions(run)}
    writes = []
    for step in steps:
        tool = get_tool(step.tool_name)
        if tool is not None and tool.risk == Risk.WRITE and step.tool_call_id not in started:
            writes.append(step.tool_name)
    return writes


# --- The boxes of the diagram ---------------------------------------------------------------------------------


def think(run: AgentRun, advance: Advance) -> ModelTurn:
    """The model's next turn, recorded at once (its thought, and one action step per tool call), so a worker that
    dies after it resumes from the calls instead of asking again."""
    lease_hold(run)
    engine = engine_get()
    conversation = prompts.conversation_build(run=run, steps=run_steps(run))
    turn = telemetry.model_call(engine, conversation, _tool_specs(run))
    abnormal = _abnormal_reason(turn)
    if not turn.tool_calls and not abnormal and rawsql.postgresql():
        # A final answer is recorded by the statement that ends the run (_finish), a moment later, with nothing but
        # this process's own checks in between: a worker that dies meanwhile leaves the turn to be asked again.
        advance.final_engine = engine.name
        return turn
    _turn_record(run, turn, engine.name, abnormal, comments=conversation.comments_shown)
    return turn


def _turn_record(
    run: AgentRun, turn: ModelTurn, engine: str, abnormal: str = "", *, comments: list[int] | None = None
) -> None:
    # A turn that outlived the lease is dropped: the worker now holding the run asks again.
    if not agent_run_record_turn(run=run, turn=turn, engine=engine, abnormal=abnormal, comments=comments):
        raise LeaseLost


def _final_turn_record(run: AgentRun, turn: ModelTurn, advance: Advance) -> None:
    """The final turn think held, recorded now on its own (the run does not end by the statement that records it)."""
    engine, advance.final_engine = advance.final_engine, None
    if engine is not None:
        _turn_record(run, turn, engine)


def act(run: AgentRun, step: Step, thought: str, turn_writes: list[str], advance: Advance) -> Observation | Undecided:
    """One call through the gate (agent/calls.py): refused, recorded as a dry run, proposed to a reviewer, or run."""
    with telemetry.tool_call(step) as traced:
        observation = call_dispatch(run, step, thought, turn_writes, advance)
        traced.observed(observation if isinstance(observation, Observation) else None)
    return observation


def observe(
    run: AgentRun, step: Step, observation: Observation, advance: Advance, *, last: bool = False
) -> Outcome | None:
    """What the call returned, stored as the observation the model reads on its next turn. A write whose
    verification failed ends the run: the ticket goes to humans. `last`: the turn's last call, after which the
    run goes on (persist)."""
    failed = observation.error_type == ErrorType.VERIFICATION_FAILED
    output = {"tool_name": step.tool_name, "tool_call_id": step.tool_call_id, "tool_output": observation.to_dict()}
    written = None
    if rawsql.postgresql():
        # The call's settlement (held since it ran), this observation, the lease's renewal after the slow call and,
        # after the turn's last call, the move back to running: one statement, which writes nothing when another
        # worker took the run. Then the calls are decided again one by one, as below and in persist.
        resume = last and not failed and run.status == AgentRun.Status.AWAITING_APPROVAL
        written = observation_record(
            run=run, settlement=settlement_take(advance), resume_reason=RESUMED if resume else "", **output
        )
    if written is None:
        # After the slow call, the lease is renewed before what it returned is written: in the same statement on
        # PostgreSQL, which writes nothing when another worker took the run.
        renewal = (
            lease_renewal(run, slow_call_next=False) if rawsql.postgresql() else lease_hold(run, slow_call_next=False)
        )
        written = step_append(run=run, guard=renewal, kind=Step.Kind.OBSERVATION, **output)
        if renewal is not None:
            lease_renewed(run, written is not None)
    if failed:
        reason = f"Verification of {step.tool_name} failed: {observation.message}"
        agent_run_escalate(run=run, reason=reason, advance=advance)
        return Outcome.DONE
    return None


def persist(run: AgentRun, advance: Advance, *, waiting: bool) -> Outcome | None:
    """The turn's end, stored on the run: it waits for reviewers (paused), or every call is decided and it goes on."""
    if waiting:
        # A decision may have landed while the turn was still being dispatched: then there is nothing to wait for.
        # (It reads the run itself, locked.)
        return Outcome.PAUSED if agent_run_await_decisions(run=run, advance=advance) else Outcome.CONTINUE
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        try:
            agent_run_transition(run=run, status=AgentRun.Status.RUNNING, reason=RESUMED, advance=advance)
        except InvalidTransition:
            # The run moved on during the calls (a reviewer took it over): its lease is gone, this worker stops.
            raise LeaseLost from None
    return None


def _calls(run: AgentRun, advance: Advance) -> Outcome | None:
    """act -> observe for each call of the latest turn still without an observation, then persist the turn's end.
    Returns an outcome when the run must stop here."""
    pending, thought = _pending_steps(run)
    if not pending and run.status != AgentRun.Status.AWAITING_APPROVAL:
        return None  # nothing to resume: the run, loaded by this advance, goes on to its next turn
    waiting = False
    for position, step in enumerate(pending):
        if step.tool_name == ESCALATE_TOOL:
            reason = str((step.tool_input or {}).get("reason", "")) or "The agent asked for a human."
            agent_run_escalate(run=run, reason=reason, advance=advance)
            return Outcome.DONE
        tool = get_tool(step.tool_name)
        later = [s for s in pending[position + 1 :] if s.tool_name != ESCALATE_TOOL]
        turn_writes = _writes_still_to_dispatch(run, later) if tool is not None and tool.customer_facing else []
        observation = act(run, step, thought, turn_writes, advance)
        if observation is Undecided.REVIEWER:
            waiting = True
            continue
        assert isinstance(observation, Observation), f"call {step.tool_call_id} was left {observation}"
        stop = observe(run, step, observation, advance, last=not waiting and position == len(pending) - 1)
        if stop is not None:
            return stop
    return persist(run, advance, waiting=waiting)


# --- Around the turn --------------------------------------------------------------------------------------------


def _bound_hit(run: AgentRun) -> str:
    if len(run_steps(run)) >= settings.AGENT_MAX_STEPS:
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


def _read_ticket(run: AgentRun, read: TicketSnapshot | None) -> bool:
    """The ticket as of its current version: requester, organization, custom fields, comments. Read from the
    helpdesk only when a webhook reported a newer version than the one held (tickets/helpdesk.py caches it). A
    helpdesk outage does not stop a run that already holds a version to work from. True when the helpdesk was
    asked (a slow call). `read`: a snapshot of a local ticket read already (by _start)."""
    held = run.ticket
    try:
        run.ticket = ticket_context_ensure(ticket=held, read=read)
    except HelpdeskError as exc:
        if not run.ticket.context_version:
            raise
        logger.warning("run %s: the helpdesk could not be read (%s); working from version %s", run.pk, exc.message,
                       run.ticket.context_version)  # fmt: skip
        return True
    if run.ticket is held:
        return False
    if helpdesk_for(held).name == LocalHelpdesk.name:
        # The console's own helpdesk is read from this database: not a slow call, no renewal after it. Its comments
        # are the ones stored here, which the read does not change: those read with the claim still hold.
        cached = ticket_comments_held(held)
        if cached is not None:
            ticket_comments_hold(run.ticket, list(cached))
        return False
    ticket_comments_forget(held)
    return True


def _unrecorded_stop(run: AgentRun) -> str:
    """The reason of an abnormal stop recorded just before a crash, so the resumed run escalates it."""
    steps = run_steps(run)
    last = steps[-1] if steps else None
    if last is not None and last.kind == Step.Kind.FINAL and isinstance(last.tool_output, dict):
        return str(last.tool_output.get("abnormal_stop") or "")
    return ""


def _reviewer_answered_after_failure(run: AgentRun) -> bool:
    """A reviewer approved what the customer was told after the run's last failed write: they know it failed."""
    actions = run_actions(run)
    failed = [n for n, a in enumerate(actions) if a.risk == Risk.WRITE and a.status == ProposedAction.Status.FAILED]
    if not failed:
        return False
    later = actions[failed[-1] + 1 :]
    return any(
        a.decided_by_id is not None
        and a.status == ProposedAction.Status.EXECUTED
        and (tool := get_tool(a.tool)) is not None
        and tool.customer_facing
        for a in later
    )


def _finish(run: AgentRun, turn: ModelTurn, advance: Advance) -> Outcome:
    """The model answered with text alone. A run with a write of unknown outcome, one that failed and was never
    done since, or one not proven, is not "completed" on the model's word: it goes to the humans, who are told.
    A run that completes records the answer's turn in the same statement (PostgreSQL, outside shadow)."""
    answer = turn.text
    uncertain = sorted((a for a in run_actions(run) if a.status == ProposedAction.Status.UNCERTAIN), key=lambda a: a.pk)
    unknown = [a.tool for a in uncertain]
    if unknown:
        _final_turn_record(run, turn, advance)
        agent_run_escalate(run=run, reason=FINISHED_WITH_UNKNOWN.format(writes=", ".join(unknown)), advance=advance)
        return Outcome.DONE
    state = run_state(run=run, tenant_id=run.ticket.tenant_id, actions=run_actions(run))
    unproven = state.holding_writes + ([] if _reviewer_answered_after_failure(run) else
                                       [f"{tool} (failed)" for tool in state.failed_writes])  # fmt: skip
    if unproven:
        _final_turn_record(run, turn, advance)
        agent_run_escalate(run=run, reason=FINISHED_WITH_UNPROVEN.format(writes=", ".join(unproven)), advance=advance)
        return Outcome.DONE
    engine = advance.final_engine
    if engine is not None and agent_run_finish_with_turn(
        run=run, answer=answer, turn=turn, engine=engine, advance=advance
    ):
        advance.final_engine = None
        return Outcome.DONE
    _final_turn_record(run, turn, advance)  # the lease is gone (LeaseLost), or the run ends otherwise
    agent_run_finish(run=run, answer=answer, advance=advance)
    return Outcome.DONE


def _start(run: AgentRun, advance: Advance) -> AgentRun:
    """A queued run starts; every run reads its ticket as of now before it goes on."""
    # The workflow version this run runs, recorded when it starts: in the same UPDATE that starts a queued run.
    if run.status == AgentRun.Status.QUEUED:
        version = workflow_version_to_pin(run=run)
        also = {"version": version} if version is not None else None
        # A ticket of the console's own helpdesk read for the first time, when the read changes nothing but the
        # version read (no network): recorded in the start's own statement.
        read = ticket_context_local_record(ticket=run.ticket)
        together = [Also(*read.update)] if read.update is not None else []
        run = agent_run_transition(
            run=run, status=AgentRun.Status.RUNNING, also=also, together=together, advance=advance
        )
        if read.update is not None:
            ticket_context_local_recorded(ticket=run.ticket, params=read.update[1])
        snapshot = read.snapshot
    else:
        snapshot = None
    run = agent_run_pin_version(run=run)  # a no-op once pinned
    if _read_ticket(run, snapshot):
        lease_hold(run, slow_call_next=False, always=True)  # the helpdesk was asked, a slow call: renew
    return run


def run_advance(*, run_id: int) -> Outcome:
    """Advance a run by at most one model turn. Safe to call again at any point: it resumes.

    The resume path comes first: calls of the latest turn that have no observation yet — a reviewer decided them
    while the run waited, or a worker died in the middle of the turn — go through act -> observe -> persist before
    the model is asked anything. Then one turn of the loop: think -> act (through the gate) -> observe -> persist.
    """
    run = agent_run_claim(run_id=run_id, lease_seconds=settings.AGENT_LEASE_SECONDS)
    if run is None:
        finished = not AgentRun.objects.filter(pk=run_id).exclude(status__in=RUN_FINAL).exists()
        return Outcome.DONE if finished else Outcome.BUSY
    # What this advance holds (its lease, a final turn or a call's settlement waiting for their statement): passed
    # to the services that need it, and gone with the advance.
    advance = Advance(lease=run.lease_token)
    try:
        run = _start(run, advance)
        stopped = _unrecorded_stop(run)
        if stopped:
            agent_run_escalate(run=run, reason=stopped, advance=advance)
            return Outcome.DONE
        stop = _calls(run, advance)  # resume: the latest turn's calls still to act on
        if stop is not None:
            return stop
        bound = _bound_hit(run)
        if bound:
            agent_run_escalate(run=run, reason=f"Stopped because {bound}.", advance=advance)
            return Outcome.DONE
        turn = think(run, advance)  # the run loaded here follows what the turn recorded
        abnormal = _abnormal_reason(turn)
        if abnormal:
            agent_run_escalate(run=run, reason=abnormal, advance=advance)
            return Outcome.DONE
        if not turn.tool_calls:
            return _finish(run, turn, advance)
        return _calls(run, advance) or Outcome.CONTINUE  # act -> observe for each call of this turn, then persist
    except LeaseLost:
        logger.warning("run %s: lease lost mid-turn; another worker carries on", run_id)
        return Outcome.LOST
    finally:
        if not advance.released:  # a status change that stopped the run released it already
            active_ms = int((time.monotonic() - advance.started) * 1000)
            agent_run_release(run_id=run_id, token=advance.lease, active_ms=active_ms)
