from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from agent.aggregates import Percentile, seconds_between
from agent.models import AgentRun, ProposedAction, Rating, RegressionCase, Replay, Step, Workflow
from agent.policy import Risk
from tickets.models import Ticket

if TYPE_CHECKING:
    from agent.tools.base import Tool


@dataclass(frozen=True)
class WorkflowChoice:
    workflow: Workflow | None
    matched_on: str  # AgentRun.MatchedOn

    @property
    def phase(self) -> str:
        """The phase a run starts in. Words the customer wrote are no trusted signal: a workflow they alone chose
        runs at most in triage, so its writes wait for a reviewer; autonomy needs a tag the helpdesk's own rules
        set. A ticket no workflow matches runs with triage rules."""
        if self.workflow is None:
            return Workflow.Phase.TRIAGE
        if self.matched_on == AgentRun.MatchedOn.KEYWORDS and self.workflow.phase == Workflow.Phase.AUTONOMOUS:
            return Workflow.Phase.TRIAGE
        return self.workflow.phase


def workflow_choice(*, ticket: Ticket) -> WorkflowChoice:
    """The enabled workflow for a ticket and what chose it: a tag match wins over a keyword match; ties go to the
    oldest workflow."""
    workflows = list(Workflow.objects.filter(enabled=True).order_by("created_at", "id"))
    tags = set(ticket.tags)
    for workflow in workflows:
        if tags.intersection(workflow.match_tags):
            return WorkflowChoice(workflow, AgentRun.MatchedOn.TAGS)
    text = f"{ticket.subject}\n{ticket.description}".lower()
    for workflow in workflows:
        if any(keyword.lower() in text for keyword in workflow.match_keywords if keyword.strip()):
            return WorkflowChoice(workflow, AgentRun.MatchedOn.KEYWORDS)
    return WorkflowChoice(None, AgentRun.MatchedOn.NONE)


def workflow_match(*, ticket: Ticket) -> Workflow | None:
    return workflow_choice(ticket=ticket).workflow


def run_transcript(*, run_id: int) -> list[Step]:
    return list(Step.objects.filter(run_id=run_id).order_by("index"))


@dataclass(frozen=True)
class Evidence:
    """What a workflow has shown so far: the facts an admin promotes or demotes it on."""

    reviewed: int  # proposals a human decided: approved, rejected, answered with feedback, or approved and failed
    approved_unedited: int  # approved as proposed, and not failed when it ran
    approved_edited: int
    rejected: int
    rejection_reasons: list[str]
    verifications_passed: int
    verifications_failed: int
    thumbs_up: int
    thumbs_down: int
    resolved_runs: int  # completed outside shadow: a shadow run only drafts, it resolves nothing
    median_resolution_seconds: float | None
    responded: int = 0
    execution_failed: int = 0  # approved by a human, then the call itself failed
    drafted_runs: int = 0  # shadow runs that completed with their private note

    @classmethod
    def empty(cls) -> Evidence:
        """A version nothing has run yet."""
        return cls(0, 0, 0, 0, [], 0, 0, 0, 0, 0, None)

    @property
    def unedited_approval_rate(self) -> float | None:
        return self.approved_unedited / self.reviewed if self.reviewed else None

    @property
    def edit_rate(self) -> float | None:
        return self.approved_edited / self.reviewed if self.reviewed else None

    @property
    def verification_pass_rate(self) -> float | None:
        total = self.verifications_passed + self.verifications_failed
        return self.verifications_passed / total if total else None

    @property
    def thumbs_up_ratio(self) -> float | None:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else None


REJECTION_REASONS_SHOWN = 5

# Each evidence number, once: the counts below and the tickets view's filter behind each number use these, so a
# number and the tickets it links to cannot disagree.
_HUMAN = Q(decided_by__isnull=False)
_APPROVED = Q(status__in=[ProposedAction.Status.APPROVED, ProposedAction.Status.EXECUTED])
# Approved, then it did not work: the call failed, its outcome is unknown, or re-reading state disproved it. Such a
# call is never counted as a good approval, edited or not.
_FAILED_TO_RUN = Q(status__in=[ProposedAction.Status.FAILED, ProposedAction.Status.UNCERTAIN]) | Q(
    verification=ProposedAction.Verification.FAILED
)
EVIDENCE_ACTION_FILTERS: dict[str, Q] = {
    "reviewed": _HUMAN & ~Q(status=ProposedAction.Status.WITHDRAWN),
    "approved_unedited": _HUMAN & _APPROVED & ~_FAILED_TO_RUN & Q(original_args__isnull=True),
    "approved_edited": _HUMAN & _APPROVED & ~_FAILED_TO_RUN & Q(original_args__isnull=False),
    "rejected": _HUMAN & Q(status=ProposedAction.Status.REJECTED),
    "responded": _HUMAN & Q(status=ProposedAction.Status.RESPONDED),
    "execution_failed": _HUMAN & _FAILED_TO_RUN,
    "verifications_passed": Q(verification=ProposedAction.Verification.PASSED),
    "verifications_failed": Q(verification=ProposedAction.Verification.FAILED),
}
EVIDENCE_RATING_FILTERS: dict[str, Q] = {
    "thumbs_up": Q(value=Rating.Value.UP),
    "thumbs_down": Q(value=Rating.Value.DOWN),
}
EVIDENCE_RUN_FILTERS: dict[str, Q] = {
    "resolved_runs": Q(status=AgentRun.Status.COMPLETED) & ~Q(phase=Workflow.Phase.SHADOW),
    "drafted_runs": Q(status=AgentRun.Status.COMPLETED, phase=Workflow.Phase.SHADOW),
}
EVIDENCE_KEYS = (*EVIDENCE_ACTION_FILTERS, *EVIDENCE_RATING_FILTERS, *EVIDENCE_RUN_FILTERS)


def evidence_ticket_filter(*, key: str, workflow_id: int | None, version_id: int | None = None) -> Q:
    """A filter on Ticket: the tickets behind one evidence number (of one workflow version, one workflow, or of
    all)."""
    group, group_id = ("version", version_id) if version_id else ("workflow", workflow_id)

    def scope(prefix: str) -> Q:
        return Q(**{f"{prefix}{group}": group_id}) if group_id else Q()

    if key in EVIDENCE_ACTION_FILTERS:
        rows = ProposedAction.objects.filter(EVIDENCE_ACTION_FILTERS[key], scope("run__"), run__ticket=OuterRef("pk"))
    elif key in EVIDENCE_RATING_FILTERS:
        by_action = Q(action__run__ticket=OuterRef("pk")) & scope("action__run__")
        by_step = Q(step__run__ticket=OuterRef("pk")) & scope("step__run__")
        rows = Rating.objects.filter(EVIDENCE_RATING_FILTERS[key], by_action | by_step)
    elif key in EVIDENCE_RUN_FILTERS:
        rows = AgentRun.objects.filter(EVIDENCE_RUN_FILTERS[key], scope(""), ticket=OuterRef("pk"))
    else:
        raise ValueError(key)
    return Q(Exists(rows))


def _grouped(rows: Iterable[dict], key: str) -> dict[int, dict]:
    return {row[key]: row for row in rows}


def _resolution_times(group: str, ids: list[int]) -> tuple[dict[int, tuple[int, float | None]], dict[int, int]]:
    """Per workflow or version: (resolved runs, their median seconds to complete) and the shadow runs that drafted.
    One grouped query in PostgreSQL; in Python on SQLite (the demo)."""
    completed = AgentRun.objects.filter(**{f"{group}__in": ids}, status=AgentRun.Status.COMPLETED)
    durations: dict[int, tuple[int, float | None]] = {}
    drafted: dict[int, int] = defaultdict(int)
    if connection.vendor == "postgresql":
        resolved = ~Q(phase=Workflow.Phase.SHADOW) & Q(finished_at__isnull=False)
        for row in (
            completed.values(group)
            .order_by()
            .annotate(
                drafted=Count("id", filter=Q(phase=Workflow.Phase.SHADOW)),
                resolved=Count("id", filter=resolved),
                median=Percentile(seconds_between("created_at", "finished_at"), 0.5, filter=resolved),
            )
        ):
            durations[row[group]] = (row["resolved"], row["median"])
            drafted[row[group]] = row["drafted"]
        return durations, drafted
    times: dict[int, list[float]] = defaultdict(list)
    found = completed.values_list(f"{group}_id", "phase", "created_at", "finished_at")
    for group_id, phase, created, finished in found:
        if phase == Workflow.Phase.SHADOW:
            drafted[group_id] += 1
        elif finished is not None:
            times[group_id].append((finished - created).total_seconds())
    return {g: (len(t), statistics.median(t)) for g, t in times.items()}, drafted


def workflow_evidence_many(*, workflow_ids: list[int]) -> dict[int, Evidence]:
    """The evidence of many workflows over their whole life, in a fixed number of queries."""
    return _evidence_many(group="workflow", ids=workflow_ids)


def version_evidence_many(*, version_ids: list[int]) -> dict[int, Evidence]:
    """The evidence of many workflow versions: only what runs of each version did. Promotion is gated on this."""
    return _evidence_many(group="version", ids=version_ids)


def _evidence_many(*, group: str, ids: list[int]) -> dict[int, Evidence]:
    """Evidence grouped by the runs' workflow or version, in a fixed number of queries whatever the number of runs.
    The one place evidence is computed: the workflows page, the API and the promotion gate all read it."""
    if not ids:
        return {}
    by_run = f"run__{group}"
    decisions = _grouped(
        ProposedAction.objects.filter(**{f"{by_run}__in": ids})
        .values(by_run)
        .order_by()
        .annotate(**{key: Count("id", filter=condition) for key, condition in EVIDENCE_ACTION_FILTERS.items()}),
        by_run,
    )
    # Ratings of proposals and of drafted steps, one grouped query each: an OR across both joins scanned every
    # step and action.
    ratings: dict[int, dict] = defaultdict(lambda: defaultdict(int))
    for via in (f"action__{by_run}", f"step__{by_run}"):
        for row in (
            Rating.objects.filter(**{f"{via}__in": ids})
            .values(via)
            .order_by()
            .annotate(**{key: Count("id", filter=condition) for key, condition in EVIDENCE_RATING_FILTERS.items()})
        ):
            for key in EVIDENCE_RATING_FILTERS:
                ratings[row[via]][key] += row[key]
    durations, drafted = _resolution_times(group, ids)
    reasons: dict[int, list[str]] = defaultdict(list)
    for group_id, reason in (
        ProposedAction.objects.filter(EVIDENCE_ACTION_FILTERS["rejected"], **{f"{by_run}__in": ids})
        .annotate(rank=Window(RowNumber(), partition_by=[F(by_run)], order_by=[F("decided_at").desc(), F("id").desc()]))
        .filter(rank__lte=REJECTION_REASONS_SHOWN)
        .order_by(by_run, "rank")
        .values_list(by_run, "decision_reason")
    ):
        reasons[group_id].append(reason)
    evidence = {}
    for group_id in ids:
        counts = decisions.get(group_id, {})
        thumbs = ratings.get(group_id, {})
        resolved, median = durations.get(group_id, (0, None))
        evidence[group_id] = Evidence(
            reviewed=counts.get("reviewed", 0),
            approved_unedited=counts.get("approved_unedited", 0),
            approved_edited=counts.get("approved_edited", 0),
            rejected=counts.get("rejected", 0),
            responded=counts.get("responded", 0),
            execution_failed=counts.get("execution_failed", 0),
            rejection_reasons=reasons.get(group_id, []),
            verifications_passed=counts.get("verifications_passed", 0),
            verifications_failed=counts.get("verifications_failed", 0),
            thumbs_up=thumbs.get("thumbs_up", 0),
            thumbs_down=thumbs.get("thumbs_down", 0),
            resolved_runs=resolved,
            drafted_runs=drafted.get(group_id, 0),
            median_resolution_seconds=median,
        )
    return evidence


def workflow_evidence(*, workflow: Workflow) -> Evidence:
    return workflow_evidence_many(workflow_ids=[workflow.pk])[workflow.pk]


def autonomy_unmet_criteria(*, evidence: Evidence) -> list[str]:
    """Why a workflow may not yet run alone; empty when it may."""
    unmet = []
    if evidence.reviewed < settings.AUTONOMY_MIN_REVIEWED:
        unmet.append(f"{evidence.reviewed} reviewed proposals, {settings.AUTONOMY_MIN_REVIEWED} needed")
    rate = evidence.unedited_approval_rate or 0.0
    if rate < settings.AUTONOMY_MIN_UNEDITED_APPROVAL_RATE:
        unmet.append(f"{rate:.0%} approved unedited, {settings.AUTONOMY_MIN_UNEDITED_APPROVAL_RATE:.0%} needed")
    if evidence.verifications_failed > settings.AUTONOMY_MAX_FAILED_VERIFICATIONS:
        unmet.append(
            f"{evidence.verifications_failed} failed verifications, at most "
            f"{settings.AUTONOMY_MAX_FAILED_VERIFICATIONS} allowed"
        )
    return unmet


def triage_unmet_criteria(*, evidence: Evidence) -> list[str]:
    """Why a shadow workflow may not yet act in triage: reviewers have not rated enough of its drafts, or not
    well enough. Empty when it may."""
    unmet = []
    rated = evidence.thumbs_up + evidence.thumbs_down
    if rated < settings.TRIAGE_MIN_RATINGS:
        unmet.append(f"{rated} rated drafts, {settings.TRIAGE_MIN_RATINGS} needed")
    ratio = evidence.thumbs_up_ratio or 0.0
    if rated and ratio < settings.TRIAGE_MIN_THUMBS_UP_RATE:
        unmet.append(f"{ratio:.0%} thumbs up, {settings.TRIAGE_MIN_THUMBS_UP_RATE:.0%} needed")
    return unmet


# --- A proposal's context for a reviewer: what the agent found, and what happens after a decision ----------------

SUMMARY_CHARS = 160


def _short(value: Any, limit: int = SUMMARY_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_text(columns: list[str], row: Any) -> str:
    if isinstance(row, dict):
        pairs = row.items()
    elif isinstance(row, list | tuple):
        pairs = zip(columns, row, strict=False)
    else:
        return _short(row)
    return _short(", ".join(f"{key}={value}" for key, value in pairs))


def observation_summary(output: dict[str, Any] | None) -> str:
    """One line a reviewer can read instead of the raw JSON of an observation (which stays one click away)."""
    if not output:
        return "no result recorded"
    if not output.get("ok"):
        return _short(f"failed ({output.get('error_type') or 'error'}): {output.get('message') or ''}")
    data = output.get("data")
    if isinstance(data, dict):
        if data.get("dry_run"):
            return "dry run: not executed"
        if isinstance(data.get("rows"), list):
            rows = data["rows"]
            if not rows:
                return "no rows"
            first = _row_text(data.get("columns") or [], rows[0])
            more = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
            return _short(f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {first}{more}")
        if isinstance(data.get("events"), list):
            events = data["events"]
            first = f"; latest: {_short(events[0], 100)}" if events else ""
            return f"{len(events)} log event{'s' if len(events) != 1 else ''}{first}"
        if isinstance(data.get("results"), list):
            titles = [str(r.get("title", "")) for r in data["results"] if isinstance(r, dict)]
            return _short(f"{len(titles)} runbook(s): {'; '.join(titles)}") if titles else "no runbook matched"
        scalars = {k: v for k, v in data.items() if isinstance(v, str | int | float | bool) or v is None}
        return _short(", ".join(f"{k}={v}" for k, v in scalars.items()) or data)
    if isinstance(data, list):
        return f"{len(data)} item{'s' if len(data) != 1 else ''}"
    return _short(data if data is not None else "ok")


@dataclass(frozen=True)
class FollowUpStep:
    tool: str
    why: str
    args: dict[str, Any]
    text: str  # the drafted note or reply, for tools that post one
    waits_for_reviewer: bool


@dataclass(frozen=True)
class FollowUp:
    """What happens if the proposal is approved. `known` is False for a model: it decides after it reads the
    result, so only the rules that bind it can be said in advance."""

    runs_now: str
    verification: str
    known: bool
    steps: list[FollowUpStep]
    note: str


MODEL_NEXT = (
    "The model reads the result and then chooses its next step, so it cannot be shown in advance. Whatever it "
    "chooses goes through the same gate: it cannot reply to the customer or solve the ticket until every write "
    "in the run has passed verification."
)
OFFLINE_NEXT = "The offline engine follows the workflow's runbook: after this step it makes these calls, in order."
OFFLINE_NOT_FROM_RUNBOOK = "This call is not a runbook step, so the offline engine's next step is not known."
APPROVAL_RUNS = "Approving runs {tool} against the company's systems."


def _call_position(call_id: str) -> int | None:
    """The runbook step of an offline-engine call id (rb-<step>-<attempt>-<variant>)."""
    parts = call_id.split("-")
    if len(parts) == 4 and parts[0] == "rb" and parts[1].isdigit():
        return int(parts[1])
    return None


def _draft_text(tool: Tool | None, args: dict[str, Any]) -> str:
    """The text a person would read from this call: a drafted note or reply."""
    return str(args.get(tool.text_arg, "")) if tool is not None and tool.text_arg else ""


def proposal_follow_up(*, run: AgentRun, action: ProposedAction, transcript: list[Step]) -> FollowUp:
    """What approving this proposal leads to, as far as it can honestly be known. Pure: uses the run, its
    workflow and the transcript already loaded."""
    from agent.gate import RunState, Verdict, gate_decide
    from agent.llm.conversation import Conversation, Exchange, ToolCall, ToolResult
    from agent.llm.offline import (  # the offline engine's own templating and conditions, not a copy of them
        _condition_fails,
        _fill,
        _Missing,
        _quoting,
    )
    from agent.prompts import _exchanges_of, playbook_values, run_playbook
    from agent.tools import all_tools

    tools = all_tools()
    tool = tools.get(action.tool)
    runs_now = (tool.approval_effect if tool is not None else "") or APPROVAL_RUNS.format(tool=action.tool)
    verification = tool.verify_summary if tool is not None and tool.verify_summary else ""
    if not run.engine.startswith("offline") and run.engine:
        return FollowUp(runs_now, verification, known=False, steps=[], note=MODEL_NEXT)
    plan = run_playbook(run)
    position = _call_position(action.tool_call_id)
    if position is None or position >= len(plan):
        return FollowUp(runs_now, verification, known=False, steps=[], note=OFFLINE_NOT_FROM_RUNBOOK)
    ticket = run.ticket
    values = playbook_values(run, transcript, plan)
    # As if approved: this call ran with exactly these arguments, so texts that name what ran can be shown.
    ran = Exchange(
        text="",
        tool_calls=[ToolCall(action.tool_call_id, action.tool, action.args)],
        results=[ToolResult(action.tool_call_id, action.tool, {"ok": True, "meta": {"executed_args": action.args}})],
    )
    conversation = Conversation(system_prompt="", ticket_prompt="", exchanges=[*_exchanges_of(transcript), ran])
    # After an approved write passes verification, the gate lets the customer-facing steps run.
    verified = action.risk == Risk.WRITE
    state = RunState(
        phase=run.phase, tenant_id=ticket.tenant_id, workflow=run.workflow, has_verified_approved_write=verified
    )
    steps = []
    for spec in plan[position + 1 :]:
        if _condition_fails(spec.get("when"), conversation):
            if spec.get("otherwise") == "escalate":
                break  # the engine hands the ticket to humans here
            continue  # the engine skips it
        args = {}
        for key, value in (spec.get("args") or {}).items():
            quote = _quoting(str(spec.get("tool", "")), key)
            filled = _fill(value, values, quote=quote, conversation=conversation)
            args[key] = value if isinstance(filled, _Missing) else filled
        name = str(spec.get("tool", ""))
        decision = gate_decide(tool=tools.get(name), name=name, args=args, state=state, available=list(tools))
        steps.append(
            FollowUpStep(
                tool=name,
                why=str(spec.get("why", "")),
                args=args,
                text=_draft_text(tools.get(name), args),
                waits_for_reviewer=decision.verdict == Verdict.PROPOSE,
            )
        )
        if decision.verdict == Verdict.PROPOSE:
            break  # the engine stops at the next proposal; what follows depends on that decision
    return FollowUp(runs_now, verification, known=True, steps=steps, note=OFFLINE_NEXT)


def agent_run_superseded(*, run_id: int, token: str) -> bool:
    """True when a newer dispatch replaced the message carrying token (or the run is gone)."""
    current = AgentRun.objects.filter(pk=run_id).values_list("dispatch_token", flat=True).first()
    return current != token


# --- Versions, suites and replays, for their pages --------------------------------------------------------------

REPLAYS_SHOWN = 10


def regression_case_list(*, workflow: Workflow) -> list[RegressionCase]:
    return list(RegressionCase.objects.filter(workflow=workflow, active=True).select_related("ticket").order_by("-id"))


def replay_list(*, workflow: Workflow) -> list[Replay]:
    return list(Replay.objects.filter(workflow=workflow).select_related("version").order_by("-id")[:REPLAYS_SHOWN])


def replay_get(*, replay_id: int) -> Replay | None:
    replay = Replay.objects.filter(pk=replay_id).select_related("workflow", "version", "created_by").first()
    if replay is not None:
        replay.rows = list(replay.items.select_related("ticket", "case").order_by("position"))
    return replay


# --- The API's reads ------------------------------------------------------------------------------------------


RUN_ORDER = ("-created_at", "-id")  # the API's run list, newest first (keyset pages on the same order)
ACTION_ORDER = ("created_at", "id")  # the API's action list, oldest first


def agent_run_list(*, ticket: int | None = None, status: str | None = None) -> QuerySet[AgentRun]:
    """Runs, newest first, optionally of one ticket or in one status."""
    runs = AgentRun.objects.select_related("workflow").order_by(*RUN_ORDER)
    if ticket is not None:
        runs = runs.filter(ticket_id=ticket)
    if status:
        runs = runs.filter(status=status)
    return runs


def agent_run_detail_queryset() -> QuerySet[AgentRun]:
    """Runs with their steps in order, for reading one in full."""
    return AgentRun.objects.select_related("workflow").prefetch_related(
        Prefetch("steps", queryset=Step.objects.order_by("index"))
    )


def proposed_action_list(*, status: str | None = None, run: int | None = None) -> QuerySet[ProposedAction]:
    """Proposed actions, oldest first, optionally in one status or of one run."""
    actions = ProposedAction.objects.select_related("decided_by").order_by(*ACTION_ORDER)
    if status:
        actions = actions.filter(status=status)
    if run is not None:
        actions = actions.filter(run_id=run)
    return actions


def workflow_list_with_evidence() -> list[tuple[Workflow, Evidence]]:
    """Every workflow with its evidence. Admins curate a handful: a fixed number of queries either way."""
    workflows = list(Workflow.objects.order_by("name", "id"))
    evidence = workflow_evidence_many(workflow_ids=[workflow.pk for workflow in workflows])
    return [(workflow, evidence[workflow.pk]) for workflow in workflows]
