"""Replay: a workflow version run over past tickets, changing nothing anywhere.

The version's engine (the offline runbook follower, or the model the version recorded) works each ticket as a run
would, but every call is answered without touching the company or the helpdesk:
- a read answers from the observation the original run recorded for the same call (tool + canonical arguments);
  only on a replay an admin started with live reads, an unrecorded read runs for real (read-only tools only);
- a write or helpdesk call is never sent: it answers from the original run's recorded outcome of the same call,
  else as a dry run, and becomes a would-be effect compared with what humans approved and what was verified.
Tool.invoke refuses every non-read in a replay context as well, so no path through a tool can write.

Determinism: the offline engine is a pure function of the conversation, and every observation comes from the
recording (or is a dry run), so the same version over the same recorded tickets gives the same transcript, effects
and digest. A real model gets the same inputs and the same observations for the same calls; whether it makes the
same calls is up to the model (temperature 0 is not a guarantee), which the digest makes visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agent import prompts
from agent.catalogue import UNKNOWN_TOOL, get_tool, tools_limited_to
from agent.findings import run_history
from agent.gate import intent_hash, intent_hashes
from agent.llm.bedrock import BedrockEngine
from agent.llm.conversation import ESCALATE_TOOL, Conversation, Engine, EngineError, Exchange
from agent.llm.conversation import ToolResult as Result
from agent.llm.offline import OfflineEngine
from agent.models import AgentRun, ProposedAction, RegressionCase, Replay, ReplayItem, Step, Workflow, WorkflowVersion
from agent.suites import regression_cases_sync, suite_run_start
from agent.tools._summary import clip
from agent.tools.base import ErrorType, Observation, Risk, Tool, ToolContext
from agentconsole.errors import ApplicationError
from audit.services import audit_event_record
from tickets.models import Ticket, TicketComment

logger = logging.getLogger(__name__)

REPLAY_DRY_RUN = "Replay: this call was not sent; it is recorded as a would-be effect."
NOT_RECORDED = (
    "Replay: the original run never made this read, and this replay answers only from recordings (live reads off)."
)
NO_TICKETS = "There is no run of this workflow to replay yet (ended, or waiting for a reviewer)."
TOO_MANY_TICKETS = "A replay covers at most {limit} tickets."
LIVE_READS_OFF = "Live reads in replays are switched off (REPLAY_LIVE_READS_ALLOWED)."
# Runs that stopped advancing: ended, or waiting for a reviewer (their transcript so far is a recording too).
REPLAYABLE = (
    AgentRun.Status.COMPLETED,
    AgentRun.Status.ESCALATED,
    AgentRun.Status.TAKEN_OVER,
    AgentRun.Status.AWAITING_APPROVAL,
)


# --- Replaying one ticket ---------------------------------------------------------------------------------------


@dataclass
class TicketReplay:
    outcome: str = ""
    final_text: str = ""
    transcript: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    original: dict[str, Any] = field(default_factory=dict)
    verdict: str = ReplayItem.Verdict.PENDING

    @property
    def digest(self) -> str:
        body = {"outcome": self.outcome, "final": self.final_text, "transcript": self.transcript}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Recording:
    """What the original run observed, by intent: the k-th identical call of a replay gets the k-th answer."""

    def __init__(self, run: AgentRun) -> None:
        steps = list(run.steps.order_by("index"))
        calls = {s.tool_call_id: s for s in steps if s.kind == Step.Kind.ACTION}
        self._answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for step in steps:
            call = calls.get(step.tool_call_id)
            if step.kind == Step.Kind.OBSERVATION and call is not None and isinstance(call.tool_input, dict):
                self._answers[intent_hash(call.tool_name, call.tool_input)].append(step.tool_output or {})
        self._used: dict[str, int] = defaultdict(int)

    def answer(self, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
        key = intent_hash(name, args)
        answers = self._answers.get(key)
        if not answers:
            return None
        index = min(self._used[key], len(answers) - 1)
        self._used[key] += 1
        return answers[index]


def engine_for(version: WorkflowVersion) -> Engine:
    """The engine the version recorded: the offline engine, or the model id it named."""
    if version.engine.startswith("bedrock:"):
        return BedrockEngine(model_id=version.engine.removeprefix("bedrock:"))
    return OfflineEngine()


def _conversation_parts(
    version: WorkflowVersion, run: AgentRun
) -> tuple[str, str, list[dict[str, Any]], str, str, dict[int, str]]:
    """What the replay's model is told: the ticket as the run's first turn showed it, and the comments that arrived
    while the run worked, after the same turns as in the run (`news`, by the turn they follow)."""
    ticket = run.ticket
    earlier = prompts.earlier_runs(run)
    sent = list(run.ticket.comments.filter(delivery=TicketComment.Delivery.SENT).order_by("created_at", "id"))
    shown = prompts.comments_shown(run, sent, list(run.steps.all()))
    comments = shown.opening
    playbook = list(version.playbook or [])
    if run.trigger == AgentRun.Trigger.CUSTOMER_COMMENT and playbook:
        playbook = prompts.follow_up_playbook(playbook)
    system = prompts.system_prompt(
        template=version.prompt,
        phase=run.phase,
        tenant_id=ticket.tenant_id,
        workflow_name=version.workflow.name,
        runbook=version.runbook,
    )
    latest = prompts.latest_customer_comment(run, comments)
    history = run_history(earlier) if earlier else "(no earlier runs)"
    ticket_text = prompts.ticket_prompt(run, comments=comments, earlier=earlier)
    news = prompts.news_after_turns(run, shown.later)
    return system, ticket_text, playbook, history, clip(latest.body, 300) if latest else "", news


def _dry_run(args: dict[str, Any]) -> Observation:
    return Observation.success({"dry_run": True, "message": REPLAY_DRY_RUN}, executed_args=args, replay=True)


def version_tools(version: WorkflowVersion) -> dict[str, Tool]:
    """The tools a version's model is offered, as the live gate offers them: the version's own tool set (a version
    recorded before tool sets were kept offers every tool)."""
    names = {entry.get("name") for entry in version.tools or [] if isinstance(entry, dict)}
    names.discard(prompts.ESCALATE_SPEC["name"])
    return tools_limited_to(names)


def _answer(
    name: str, raw: dict[str, Any], recording: Recording, ctx: ToolContext, live_reads: bool, tools: dict[str, Tool]
) -> tuple[dict[str, Any], str]:
    """The observation a call gets in a replay, and where it came from. A tool outside the version's set is refused
    as unknown, as the live gate refuses it."""
    tool = tools.get(name)
    if tool is None:
        return Observation.failure(ErrorType.INVALID_ARGUMENTS, UNKNOWN_TOOL.format(name=name)).to_dict(), "refused"
    args = tool.parse_args(raw)
    if isinstance(args, Observation):
        return args.to_dict(), "refused"
    refused = tool.check_tenant(args, ctx)
    if refused is not None:
        return refused.to_dict(), "refused"
    recorded = recording.answer(name, raw)
    if recorded is not None:
        return recorded, "recorded"
    if tool.risk != Risk.READ:
        return _dry_run(raw).to_dict(), "dry_run"
    if live_reads:
        return tool.invoke(raw, ctx).to_dict(), "live"
    return Observation.failure("not_recorded", NOT_RECORDED).to_dict(), "not_recorded"


def ticket_replay(*, version: WorkflowVersion, run: AgentRun, engine: Engine, live_reads: bool) -> TicketReplay:
    """Work the ticket of a past run with this version, answering every call from the run's recording."""
    result = TicketReplay()
    recording = Recording(run)
    system, ticket_text, playbook, history, latest, news = _conversation_parts(version, run)
    tools = version_tools(version)
    specs = [tool.spec() for tool in tools.values()] + [prompts.ESCALATE_SPEC]
    ctx = ToolContext(ticket_id=run.ticket_id, tenant_id=run.ticket.tenant_id, run_id=None, replay=True)
    exchanges: list[Exchange] = []
    steps: list[Step] = []
    while not result.outcome:
        if len(steps) >= settings.AGENT_MAX_STEPS:
            result.outcome, result.final_text = (
                "escalated",
                f"Stopped at the limit of {settings.AGENT_MAX_STEPS} steps.",
            )
            break
        variables = prompts.playbook_values(run, steps, playbook, history=history, latest_comment=latest)
        conversation = Conversation(system, ticket_text, list(exchanges), playbook, variables)
        turn = engine.next_turn(conversation, specs)
        entry: dict[str, Any] = {"turn": len(exchanges) + 1, "text": turn.text, "calls": []}
        result.transcript.append(entry)
        abnormal = turn.abnormal_stop()
        if abnormal:
            result.outcome, result.final_text = "escalated", f"The model's turn ended abnormally: {abnormal}."
            break
        if not turn.tool_calls:
            result.outcome, result.final_text = "completed", turn.text
            break
        results = []
        for call in turn.tool_calls:
            if call.name == ESCALATE_TOOL:
                entry["calls"].append({"tool": call.name, "args": call.args, "source": "escalation"})
                result.outcome = "escalated"
                result.final_text = str(call.args.get("reason") or "The agent asked for a human.")
                break
            observation, source = _answer(call.name, call.args, recording, ctx, live_reads, tools)
            entry["calls"].append({"tool": call.name, "args": call.args, "source": source, "observation": observation})
            results.append(Result(tool_call_id=call.id, name=call.name, observation=observation))
            steps += [
                Step(kind=Step.Kind.ACTION, tool_name=call.name, tool_call_id=call.id, tool_input=call.args),
                Step(kind=Step.Kind.OBSERVATION, tool_name=call.name, tool_call_id=call.id, tool_output=observation),
            ]
            tool = get_tool(call.name)
            if tool is not None and tool.risk != Risk.READ and source != "refused":
                result.effects.append({"tool": call.name, "args": call.args, "risk": str(tool.risk)})
            if observation.get("error_type") == ErrorType.VERIFICATION_FAILED:
                result.outcome = "escalated"
                result.final_text = f"Verification of {call.name} failed: {observation.get('message', '')}"
                break
        news_now = news.get(len(exchanges) + 1, "")
        exchanges.append(Exchange(text=turn.text, tool_calls=turn.tool_calls, results=results, news=news_now))
    _compare(result, run)
    return result


# --- Side by side with the original -----------------------------------------------------------------------------


def _label(action: ProposedAction) -> str:
    status = action.status
    if status == ProposedAction.Status.DRY_RUN:
        return "dry run"
    if action.decided_by_id is None and status == ProposedAction.Status.EXECUTED:
        label = "ran alone"
    elif action.original_args is not None and status in (
        ProposedAction.Status.APPROVED,
        ProposedAction.Status.EXECUTED,
    ):
        label = "edited, then approved"
    else:
        label = {
            ProposedAction.Status.EXECUTED: "approved",
            ProposedAction.Status.REJECTED: "rejected",
        }.get(status, action.get_status_display().lower())
    if action.verification in (ProposedAction.Verification.PASSED, ProposedAction.Verification.FAILED):
        label += f", verification {action.verification}"
    return label


def _good(action: ProposedAction) -> bool:
    """A write humans approved (or that ran alone) and whose effect was proven."""
    return (
        action.risk == Risk.WRITE
        and action.status == ProposedAction.Status.EXECUTED
        and action.verification == ProposedAction.Verification.PASSED
    )


def _compare(result: TicketReplay, run: AgentRun) -> None:
    actions = [a for a in run.actions.order_by("created_at", "id") if a.risk != Risk.READ]
    matched: set[int] = set()
    worse = False
    for effect in result.effects:
        wanted = intent_hash(effect["tool"], effect["args"])
        same = next((a for a in actions if a.pk not in matched and wanted in intent_hashes(a)), None)
        if same is None:
            effect["original"] = "not in the original run"
            continue
        matched.add(same.pk)
        effect["original"] = _label(same)
        effect["approved_args"] = same.args if same.original_args is not None else None
        worse = worse or same.status == ProposedAction.Status.REJECTED
    dropped = [a for a in actions if a.pk not in matched]
    worse = worse or any(_good(a) for a in dropped)
    result.original = {
        "run": run.pk,
        "status": run.status,
        "reason": run.status_reason,
        "phase": run.phase,
        "version": run.version.number if run.version_id else None,
        "calls": [{"tool": a.tool, "args": a.args, "label": _label(a), "replayed": a.pk in matched} for a in actions],
    }
    if worse:
        result.verdict = ReplayItem.Verdict.WORSE
    elif not dropped and len(matched) == len(result.effects) and result.outcome == run.status:
        result.verdict = ReplayItem.Verdict.SAME
    else:
        result.verdict = ReplayItem.Verdict.DIFFERS


# --- Starting and running replays -------------------------------------------------------------------------------


def recorded_run(*, ticket: Ticket, workflow: Workflow | None = None) -> AgentRun | None:
    """The ticket's latest run that stopped advancing (of this workflow, when given): what a replay answers from."""
    runs = AgentRun.objects.filter(ticket=ticket, status__in=REPLAYABLE)
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    return runs.select_related("ticket", "version").order_by("-created_at", "-id").first()


def _enqueue(replay: Replay) -> None:
    from agent.enqueue import replay_execute_send

    transaction.on_commit(lambda: replay_execute_send(replay.pk))


def _in_progress(
    *, version: WorkflowVersion, kind: str, reads: str, sources: set[int], field: str = "source_run_id"
) -> Replay | None:
    """A replay (or suite run) of this version with these parameters (its reads, and the runs or cases it covers)
    that is queued or running, if there is one."""
    active = (Replay.Status.QUEUED, Replay.Status.RUNNING)
    candidates = Replay.objects.filter(version=version, kind=kind, reads=reads, status__in=active, total=len(sources))
    for replay in candidates.order_by("-id"):
        if set(replay.items.values_list(field, flat=True)) == sources:
            return replay
    return None


@transaction.atomic
def replay_start(*, workflow: Workflow, user: Any, limit: int = 20, live_reads: bool = False) -> Replay:
    """Replay the version in force over the workflow's latest `limit` runs that stopped advancing, in the
    background."""
    from agent.permissions import admin_required
    from agent.versions import workflow_version_ensure

    admin_required(user)
    if live_reads and not settings.REPLAY_LIVE_READS_ALLOWED:
        raise ApplicationError(LIVE_READS_OFF)
    if limit > settings.REPLAY_MAX_TICKETS:
        raise ApplicationError(TOO_MANY_TICKETS.format(limit=settings.REPLAY_MAX_TICKETS))
    runs = AgentRun.objects.filter(workflow=workflow, status__in=REPLAYABLE, trigger=AgentRun.Trigger.TICKET_CREATED)
    runs = list(runs.order_by("-created_at", "-id")[:limit])
    if not runs:
        raise ApplicationError(NO_TICKETS)
    version = workflow_version_ensure(workflow=workflow)  # holds the workflow's row: one start at a time
    reads = Replay.Reads.LIVE if live_reads else Replay.Reads.RECORDED
    started = _in_progress(version=version, kind=Replay.Kind.REPLAY, reads=reads, sources={run.pk for run in runs})
    if started is not None:  # a second click while the first is queued or running: that one, not another
        return started
    replay = Replay.objects.create(
        workflow=workflow,
        version=version,
        kind=Replay.Kind.REPLAY,
        reads=reads,
        total=len(runs),
        created_by=user,
    )
    ReplayItem.objects.bulk_create(
        ReplayItem(replay=replay, position=n, ticket_id=run.ticket_id, source_run=run)
        for n, run in enumerate(reversed(runs))
    )
    audit_event_record(
        verb="replay.started", obj=replay, payload={"version": version.number, "tickets": len(runs)}, user=user
    )
    _enqueue(replay)
    return replay


NO_CASES = "This workflow has no regression cases yet: they come from reviewers' edits, rejections and thumbs-down."


@transaction.atomic
def suite_run_request(*, workflow: Workflow, user: Any) -> Replay:
    """An admin runs the suite against the version in force (e.g. after cases were added since it last ran)."""
    from agent.permissions import admin_required
    from agent.versions import workflow_version_ensure

    admin_required(user)
    version = workflow_version_ensure(workflow=workflow)  # holds the workflow's row: one start at a time
    regression_cases_sync(workflow_id=workflow.pk)
    cases = set(RegressionCase.objects.filter(workflow=workflow, active=True).values_list("id", flat=True))
    started = _in_progress(
        version=version, kind=Replay.Kind.SUITE, reads=Replay.Reads.RECORDED, sources=cases, field="case_id"
    )
    if started is not None:  # a second click while the first is queued or running: that one, not another
        return started
    replay = suite_run_start(version=version, user=user)
    if replay is None:
        raise ApplicationError(NO_CASES)
    return replay


def _item_replayed(item: ReplayItem, engine: Engine, live_reads: bool) -> None:
    from agent.suites import case_failures

    run = item.source_run
    if run is None and item.case is not None:
        run = recorded_run(ticket=item.ticket, workflow=item.case.workflow)
    if run is None:
        item.verdict = ReplayItem.Verdict.NO_RECORDING
        item.case_result = ReplayItem.CaseResult.SKIPPED if item.case_id else ""
        return
    item.source_run = run
    try:
        replayed = ticket_replay(version=item.replay.version, run=run, engine=engine, live_reads=live_reads)
    except EngineError as exc:
        item.verdict, item.error = ReplayItem.Verdict.ERROR, f"The model could not answer: {exc}"
        item.case_result = ReplayItem.CaseResult.FAILED if item.case_id else ""
        return
    item.verdict, item.outcome, item.final_text = replayed.verdict, replayed.outcome, replayed.final_text
    item.transcript, item.effects, item.original = replayed.transcript, replayed.effects, replayed.original
    item.digest = replayed.digest
    if item.case is not None:
        item.failures = case_failures(case=item.case, effects=replayed.effects)
        item.case_result = ReplayItem.CaseResult.FAILED if item.failures else ReplayItem.CaseResult.PASSED


def replay_execute(*, replay_id: int) -> Replay:
    """Work a replay's pending tickets one by one, saving each as it is done (the progress the page shows). Safe to
    call again: a redelivered task carries on with what is left. Nothing here is sent to any outside system but
    the model (and, on a live-reads replay, read-only tools)."""
    replay = Replay.objects.select_related("version__workflow").get(pk=replay_id)
    if replay.status in (Replay.Status.DONE, Replay.Status.FAILED):
        return replay
    Replay.objects.filter(pk=replay.pk).update(status=Replay.Status.RUNNING, started_at=timezone.now())
    engine = engine_for(replay.version)
    items = replay.items.filter(verdict=ReplayItem.Verdict.PENDING).select_related("ticket", "case__workflow")
    for item in items.order_by("position"):
        item.replay = replay
        _item_replayed(item, engine, replay.reads == Replay.Reads.LIVE)
        item.full_clean()
        item.save()
        Replay.objects.filter(pk=replay.pk).update(done=replay.items.exclude(verdict="pending").count())
    return replay_finish(replay=replay)


@transaction.atomic
def replay_finish(*, replay: Replay) -> Replay:
    results = list(replay.items.values_list("case_result", flat=True))
    replay.status = Replay.Status.DONE
    replay.done = len(results)
    replay.finished_at = timezone.now()
    if replay.kind == Replay.Kind.SUITE:
        replay.passed = ReplayItem.CaseResult.FAILED not in results
    replay.save(update_fields=["status", "done", "finished_at", "passed"])
    audit_event_record(
        verb="suite.finished" if replay.kind == Replay.Kind.SUITE else "replay.finished",
        obj=replay,
        payload={"version": replay.version.number, "passed": replay.passed, "items": len(results)},
    )
    return replay


@transaction.atomic
def replay_fail(*, replay_id: int, error: str) -> None:
    Replay.objects.filter(pk=replay_id).exclude(status=Replay.Status.DONE).update(
        status=Replay.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )
