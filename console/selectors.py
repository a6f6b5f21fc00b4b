"""Reads of the console's screens. Each returns everything one screen needs in a fixed number of queries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlglot
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Count, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from agent.findings import Finding as ReadFinding
from agent.findings import finding_of, step_findings
from agent.models import AgentRun, Notification, ProposedAction, Rating, Step, Workflow
from agent.selectors import FollowUp, observation_summary, proposal_follow_up
from console.models import Presence
from tickets.models import Ticket, TicketComment

QUEUE_LIMIT = 100
FINAL_RUN_STATUSES = frozenset(
    {AgentRun.Status.COMPLETED, AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER, AgentRun.Status.FAILED}
)
# Runs a human still has to close: escalated or taken over, no outcome recorded yet.
OPEN_ESCALATION = Q(status__in=[AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER], outcome="")
WORKING = (AgentRun.Status.QUEUED, AgentRun.Status.RUNNING)
# Drafted text a reviewer rates as a step: the note or reply the agent wrote.
DRAFT_TOOLS = frozenset({"add_private_note", "reply_to_customer"})
# Someone whose page refreshed their presence this recently is "here" (the page beats every 10 seconds).
PRESENCE_WINDOW = timedelta(seconds=35)


# --- The queue -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    overdue: int
    escalated: int
    running: int
    queued: int


@dataclass(frozen=True)
class Queue:
    actions: list[ProposedAction]
    escalations: list[AgentRun]
    runs: list[AgentRun]
    counts: QueueCounts
    workflows: list[Workflow]
    limit: int = QUEUE_LIMIT


def _scope(workflow: int | None, phase: str) -> Q:
    scope = Q()
    if workflow:
        scope &= Q(workflow_id=workflow)
    if phase:
        scope &= Q(phase=phase)
    return scope


def _queue_sets(workflow: int | None, phase: str) -> tuple[QuerySet, QuerySet, QuerySet]:
    """The three lists of the queue. Their counts are taken from these same querysets, so they always agree."""
    scope = _scope(workflow, phase)
    actions = ProposedAction.objects.filter(
        status=ProposedAction.Status.PENDING, run__in=AgentRun.objects.filter(scope)
    )
    escalations = AgentRun.objects.filter(scope & OPEN_ESCALATION)
    working = AgentRun.objects.filter(scope, status__in=WORKING)
    return actions, escalations, working


def queue_counts(*, workflow: int | None = None, phase: str = "", now: datetime | None = None) -> QueueCounts:
    """The queue's live numbers, for the same filters as its lists, in two queries."""
    now = now or timezone.now()
    actions, _, _ = _queue_sets(workflow, phase)
    # The run counts use the very conditions of the lists' querysets (OPEN_ESCALATION, WORKING).
    pending = actions.aggregate(total=Count("id"), overdue=Count("id", filter=Q(sla_due_at__lte=now)))
    scope = _scope(workflow, phase)
    runs = AgentRun.objects.filter(scope).aggregate(
        escalated=Count("id", filter=OPEN_ESCALATION),
        running=Count("id", filter=Q(status=AgentRun.Status.RUNNING)),
        queued=Count("id", filter=Q(status=AgentRun.Status.QUEUED)),
    )
    return QueueCounts(pending=pending["total"], overdue=pending["overdue"], **runs)


def _sla_present(action: ProposedAction, now: datetime) -> ProposedAction:
    due = action.sla_due_at
    action.sla_overdue = bool(due and due <= now)  # type: ignore[attr-defined]
    action.sla_left = due - now if due and due > now else None  # type: ignore[attr-defined]
    return action


def queue_get(*, workflow: int | None = None, phase: str = "") -> Queue:
    """Pending proposals oldest first; open escalations and working runs, most recently active first."""
    now = timezone.now()
    actions, escalations, working = _queue_sets(workflow, phase)
    return Queue(
        actions=[
            _sla_present(action, now)
            for action in actions.select_related(
                "run__ticket__tenant_link", "run__ticket__assignee", "run__workflow"
            ).order_by("created_at", "id")[:QUEUE_LIMIT]
        ],
        escalations=list(
            escalations.select_related("ticket__tenant_link", "ticket__assignee", "workflow").order_by(
                "-updated_at", "-id"
            )[:QUEUE_LIMIT]
        ),
        runs=list(
            working.select_related("ticket__tenant_link", "workflow").order_by("-updated_at", "-id")[:QUEUE_LIMIT]
        ),
        counts=queue_counts(workflow=workflow, phase=phase, now=now),
        workflows=list(Workflow.objects.order_by("name")),
    )


def next_pending_get(*, user: AbstractBaseUser, skip: list[int] | None = None) -> ProposedAction | None:
    """The proposal that has waited longest among those nobody else has claimed (Play mode's next ticket)."""
    return (
        ProposedAction.objects.filter(status=ProposedAction.Status.PENDING)
        .filter(Q(run__ticket__assignee__isnull=True) | Q(run__ticket__assignee=user))
        .exclude(pk__in=skip or [])
        .select_related("run__ticket")
        .order_by("created_at", "id")
        .first()
    )


# --- Formatting ---------------------------------------------------------------------------------------------


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def pretty_sql(sql: str) -> str:
    try:
        return sqlglot.transpile(sql, read="postgres", pretty=True)[0]
    except sqlglot.errors.SqlglotError:
        return sql


def _pretty_args(tool: str, args: Any) -> tuple[str, bool]:
    """The args as the reviewer should read them, and whether that text is SQL."""
    if tool == "run_sql" and isinstance(args, dict) and isinstance(args.get("query"), str):
        return pretty_sql(args["query"]), True
    return _pretty_json(args if args is not None else {}), False


def _args_line(tool: str, args: Any) -> str:
    """The args on one line, for a collapsed transcript entry."""
    if tool == "run_sql" and isinstance(args, dict) and isinstance(args.get("query"), str):
        text = " ".join(args["query"].split())
    elif isinstance(args, dict):
        text = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False, default=str)}" for key, value in args.items())
    else:
        text = json.dumps(args, default=str)
    return text if len(text) <= 140 else text[:139] + "…"


# --- Cards --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What one call of the agent returned, summarised, with the raw observation one click away."""

    tool: str
    ok: bool
    summary: str
    raw: str


@dataclass
class DecisionContext:
    """Everything the decision card shows beside the proposal itself."""

    findings: list[Finding]
    follow_up: FollowUp
    state_rows: list[dict[str, Any]] = field(default_factory=list)
    state_read_at: datetime | None = None
    state_message: str = ""
    state_readable: bool = False
    notifications: list[Notification] = field(default_factory=list)


def _summary(tool: str, args: Any, output: dict[str, Any] | None) -> str:
    """A read's own one-line summary of what it found (Tool.summarize), else the generic one."""
    finding = finding_of(tool, args if isinstance(args, dict) else None, output) if output else None
    return finding.line if finding is not None and finding.ok else observation_summary(output)


def _findings(transcript: list[Step], before_index: int | None) -> list[Finding]:
    """The observations of the run before the proposal (reads, notes, routing): what the agent had found."""
    calls = {s.tool_call_id: s.tool_input for s in transcript if s.kind == Step.Kind.ACTION and s.tool_call_id}
    found = []
    for step in transcript:
        if before_index is not None and step.index >= before_index:
            break
        if step.kind != Step.Kind.OBSERVATION:
            continue
        output = step.tool_output or {}
        found.append(
            Finding(
                tool=step.tool_name,
                ok=bool(output.get("ok")),
                summary=_summary(step.tool_name, calls.get(step.tool_call_id), output),
                raw=_pretty_json(output.get("data") if output.get("ok") else output),
            )
        )
    return found


def decision_context(action: ProposedAction, transcript: list[Step]) -> DecisionContext:
    """Pure, given the run's transcript: what the agent found, the state diff its tool read, what comes next."""
    from agent.tools import get_tool

    before = action.step.index if action.step_id and getattr(action, "step", None) else None
    context = DecisionContext(
        findings=_findings(transcript, before),
        follow_up=proposal_follow_up(run=action.run, action=action, transcript=transcript),
    )
    tool = get_tool(action.tool)
    context.state_readable = bool(tool and tool.can_read_current)
    state = action.current_state or {}
    if state:
        context.state_rows = [row for row in state.get("fields", []) if isinstance(row, dict)]
        context.state_message = "" if state.get("ok") else str(state.get("message", ""))
        read_at = state.get("read_at")
        context.state_read_at = datetime.fromisoformat(read_at) if isinstance(read_at, str) else None
    return context


def action_present(action: ProposedAction, *, rating: Rating | None) -> ProposedAction:
    """Attach what the action card shows. Pure: no queries, so views may call it on a service's result."""
    action.pretty_args, action.args_are_sql = _pretty_args(action.tool, action.args)  # type: ignore[attr-defined]
    action.args_json = _pretty_json(action.args)  # type: ignore[attr-defined]
    action.args_line = _args_line(action.tool, action.args)  # type: ignore[attr-defined]
    action.my_rating = rating  # type: ignore[attr-defined]
    action.dom_id = f"action-{action.pk}"  # type: ignore[attr-defined]
    # A dry-run note or reply is rated as the drafted text (its step), not a second time as a call.
    action.rated_as_draft = action.is_dry_run and action.tool in DRAFT_TOOLS  # type: ignore[attr-defined]
    action.is_real_pending = action.status == ProposedAction.Status.PENDING  # type: ignore[attr-defined]
    # While the transcript is polled, a card the reviewer may be typing into keeps its DOM (hx-preserve);
    # cards the worker still changes (approved -> executed -> verified) are swapped.
    action.keep_while_polling = action.status in (  # type: ignore[attr-defined]
        ProposedAction.Status.PENDING,
        ProposedAction.Status.DRY_RUN,
    )
    original = action.original_args
    action.args_diff = (  # type: ignore[attr-defined]
        [
            (key, original.get(key), action.args.get(key))
            for key in sorted(set(original) | set(action.args))
            if original.get(key) != action.args.get(key)
        ]
        if isinstance(original, dict)
        else []
    )
    if action.execution_result is not None:
        action.pretty_result = _pretty_json(action.execution_result)  # type: ignore[attr-defined]
    _sla_present(action, timezone.now())
    return action


def step_present(step: Step, *, rating: Rating | None) -> Step:
    """Attach what the transcript shows for one step. Pure, like action_present."""
    step.pretty_input, step.input_is_sql = _pretty_args(step.tool_name, step.tool_input)  # type: ignore[attr-defined]
    step.pretty_output = _pretty_json(step.tool_output) if step.tool_output is not None else ""  # type: ignore[attr-defined]
    step.is_draft = step.kind == Step.Kind.ACTION and step.tool_name in DRAFT_TOOLS  # type: ignore[attr-defined]
    step.draft_text = (step.tool_input or {}).get("body", "") if step.is_draft else ""  # type: ignore[attr-defined]
    step.my_rating = rating  # type: ignore[attr-defined]
    step.dom_id = f"step-{step.pk}"  # type: ignore[attr-defined]
    return step


def _mine(ratings: list[Rating]) -> Rating | None:
    return ratings[0] if ratings else None


# --- The ticket page: the decision screen ------------------------------------------------------------------------


@dataclass
class Entry:
    """One line of a collapsed transcript: a thought, a call with its result, or the final answer."""

    kind: str
    step: Step
    result: Step | None = None
    summary: str = ""
    ok: bool = True
    repeats: int = 1
    args_line: str = ""
    proposals: list[ProposedAction] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.step.tool_name, self.args_line, self.summary)


def transcript_entries(transcript: list[Step]) -> list[Entry]:
    """The transcript with each call and its observation on one line, and a call repeated as it was (a retry
    that got the same answer) counted instead of shown again with the thought that introduced it."""
    results = {s.tool_call_id: s for s in transcript if s.kind == Step.Kind.OBSERVATION and s.tool_call_id}
    entries: list[Entry] = []
    for step in transcript:
        if step.kind == Step.Kind.OBSERVATION and step.tool_call_id in results:
            continue
        if step.kind == Step.Kind.ACTION:
            result = results.get(step.tool_call_id)
            output = result.tool_output if result is not None else None
            entry = Entry(
                kind="call",
                step=step,
                result=result,
                summary=_summary(step.tool_name, step.tool_input, output) if result is not None else "",
                ok=bool(output and output.get("ok")),
                args_line=_args_line(step.tool_name, step.tool_input),
                proposals=list(getattr(step, "proposals", [])),
            )
            previous = next((e for e in reversed(entries) if e.kind == "call"), None)
            if previous is not None and previous.key == entry.key and not entry.proposals and not previous.proposals:
                previous.repeats += 1
                if entries[-1].kind == "thought":
                    entries.pop()  # the thought that introduced the repeat says nothing new
                continue
            entries.append(entry)
        elif step.kind == Step.Kind.OBSERVATION:
            output = step.tool_output or {}
            entries.append(Entry("result", step, summary=observation_summary(output), ok=bool(output.get("ok"))))
        else:
            entries.append(Entry(str(step.kind), step))
    return entries


@dataclass(frozen=True)
class PresenceInfo:
    assignee: AbstractBaseUser | None
    assigned_at: datetime | None
    others: list[str]  # other reviewers with the ticket open now
    assignee_here: bool
    mine: bool


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    comments: list[TicketComment]
    runs: list[AgentRun]
    decisions: list[ProposedAction]
    any_run_active: bool
    presence: PresenceInfo


def presence_info(*, ticket: Ticket, user: AbstractBaseUser, now: datetime | None = None) -> PresenceInfo:
    """Who holds the ticket, and who else has it open now (one query)."""
    now = now or timezone.now()
    here = list(
        Presence.objects.filter(ticket=ticket, seen_at__gte=now - PRESENCE_WINDOW)
        .select_related("user")
        .order_by("seen_at")
    )
    names = {p.user_id: p.user.get_username() for p in here}
    return PresenceInfo(
        assignee=ticket.assignee,
        assigned_at=ticket.assigned_at,
        others=[name for user_id, name in names.items() if user_id != user.pk],
        assignee_here=ticket.assignee_id in names,
        mine=ticket.assignee_id == user.pk,
    )


def ticket_detail_get(*, ticket_id: int, user: AbstractBaseUser) -> TicketDetail | None:
    """A ticket, its comments, each run's collapsed transcript with its proposals and this user's ratings, and a
    decision context for every pending proposal."""
    ticket = Ticket.objects.select_related("tenant_link", "assignee").filter(pk=ticket_id).first()
    if ticket is None:
        return None
    my_ratings = Rating.objects.filter(user=user)
    actions = ProposedAction.objects.select_related("decided_by").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings"),
        Prefetch("notifications", queryset=Notification.objects.order_by("created_at"), to_attr="sent"),
    )
    steps = Step.objects.order_by("index").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings"),
        Prefetch("actions", queryset=actions, to_attr="proposals"),
    )
    runs = list(
        AgentRun.objects.filter(ticket=ticket)
        .select_related("workflow", "closed_by")
        .prefetch_related(Prefetch("steps", queryset=steps, to_attr="transcript"))
        .order_by("created_at", "id")
    )
    comments = list(ticket.comments.order_by("created_at", "id"))
    decisions = []
    for run in runs:
        run.ticket = ticket  # the follow-up plan reads the ticket's tenant and text: no query per run
        run.is_final = run.status in FINAL_RUN_STATUSES  # type: ignore[attr-defined]
        run.trigger_comment_shown = next(  # type: ignore[attr-defined]
            (c for c in comments if c.pk == run.trigger_comment_id), None
        )
        run.is_open_escalation = run.status in (AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER) and not (  # type: ignore[attr-defined]
            run.outcome
        )
        run.can_take_over = not run.is_final or run.is_open_escalation  # type: ignore[attr-defined]
        for step in run.transcript:  # type: ignore[attr-defined]
            step_present(step, rating=_mine(step.my_ratings))
            for action in step.proposals:
                action.run = run
                action.step = step
                action_present(action, rating=_mine(action.my_ratings))
                action.comments_since = customer_comments_since(action, comments)  # type: ignore[attr-defined]
                if action.status == ProposedAction.Status.PENDING:
                    action.context = decision_context(action, run.transcript)  # type: ignore[attr-defined]
                    action.context.notifications = action.sent  # type: ignore[attr-defined]
                    decisions.append(action)
        run.entries = transcript_entries(run.transcript)  # type: ignore[attr-defined]
    return TicketDetail(
        ticket=ticket,
        comments=comments,
        runs=runs,
        decisions=decisions,
        any_run_active=any(not run.is_final for run in runs),  # type: ignore[attr-defined]
        presence=presence_info(ticket=ticket, user=user),
    )


def customer_comments_since(action: ProposedAction, comments: list[TicketComment]) -> list[TicketComment]:
    """What the customer wrote after a proposal that still waits: the reviewer decides with it in view."""
    if action.status != ProposedAction.Status.PENDING:
        return []
    return [
        c
        for c in comments
        if c.author_kind == TicketComment.AuthorKind.CUSTOMER and c.public and c.created_at > action.created_at
    ]


def ticket_live_get(*, ticket_id: int) -> tuple[Ticket, list[TicketComment]] | None:
    """The parts of a ticket that change outside the agent (status, comments from Zendesk), for the live poll."""
    ticket = Ticket.objects.select_related("tenant_link", "assignee").filter(pk=ticket_id).first()
    if ticket is None:
        return None
    return ticket, list(ticket.comments.order_by("created_at", "id"))


def action_get(*, action_id: int, user: AbstractBaseUser) -> ProposedAction | None:
    """One proposal for its card, with this user's rating; a pending one with its decision context."""
    action = (
        ProposedAction.objects.select_related("run__ticket__tenant_link", "run__ticket__assignee", "run__workflow")
        .select_related("decided_by", "step")
        .prefetch_related(Prefetch("ratings", queryset=Rating.objects.filter(user=user), to_attr="my_ratings"))
        .filter(pk=action_id)
        .first()
    )
    if action is None:
        return None
    action_present(action, rating=_mine(action.my_ratings))  # type: ignore[attr-defined]
    if action.status == ProposedAction.Status.PENDING:
        comments = list(TicketComment.objects.filter(ticket_id=action.run.ticket_id, created_at__gt=action.created_at))
        action.comments_since = customer_comments_since(action, comments)  # type: ignore[attr-defined]
        transcript = list(Step.objects.filter(run_id=action.run_id).order_by("index"))
        action.context = decision_context(action, transcript)  # type: ignore[attr-defined]
        action.context.notifications = list(action.notifications.order_by("created_at"))  # type: ignore[attr-defined]
    return action


def run_get(*, run_id: int) -> AgentRun | None:
    return AgentRun.objects.select_related("ticket", "workflow", "closed_by").filter(pk=run_id).first()


def draft_step_get(*, step_id: int, user: AbstractBaseUser) -> Step | None:
    """A drafted note or reply (the ACTION step of a draft tool), with this user's rating."""
    step = (
        Step.objects.filter(pk=step_id, kind=Step.Kind.ACTION, tool_name__in=DRAFT_TOOLS)
        .select_related("run")
        .prefetch_related(Prefetch("ratings", queryset=Rating.objects.filter(user=user), to_attr="my_ratings"))
        .first()
    )
    return step_present(step, rating=_mine(step.my_ratings)) if step else None  # type: ignore[attr-defined]


# --- The Zendesk sidebar -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SidebarPanel:
    """What the sidebar shows for the ticket open in Zendesk: the latest run, what it found, where it routed the
    ticket and why, the proposals waiting for a decision, and the latest run's other calls to rate."""

    ticket: Ticket
    run: AgentRun | None
    findings: list[ReadFinding]
    routing: dict[str, Any] | None
    pending: list[ProposedAction]
    decided: list[ProposedAction]
    active: bool


# Zendesk's ticket before a local one with the same number: the sidebar names Zendesk tickets.
_ZENDESK_FIRST = Case(When(source=Ticket.Source.ZENDESK, then=Value(0)), default=Value(1), output_field=IntegerField())


def sidebar_panel_get(*, external_id: str, user: AbstractBaseUser) -> SidebarPanel | None:
    ticket = (
        Ticket.objects.select_related("tenant_link").filter(external_id=external_id).order_by(_ZENDESK_FIRST).first()
    )
    if ticket is None:
        return None
    my_ratings = Rating.objects.filter(user=user)
    actions = ProposedAction.objects.select_related("decided_by", "run").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings")
    )
    runs = list(
        AgentRun.objects.filter(ticket=ticket)
        .select_related("workflow")
        .prefetch_related(
            Prefetch("steps", queryset=Step.objects.order_by("index"), to_attr="transcript"),
            Prefetch("actions", queryset=actions.order_by("created_at", "id"), to_attr="calls"),
        )
        .order_by("created_at", "id")
    )
    comments = list(ticket.comments.order_by("created_at", "id"))
    latest = runs[-1] if runs else None
    pending = [a for run in runs for a in run.calls if a.status == ProposedAction.Status.PENDING]  # type: ignore[attr-defined]
    decided = [
        a
        for a in (latest.calls if latest else [])  # type: ignore[attr-defined]
        if a.status != ProposedAction.Status.PENDING and a.risk != ProposedAction.Risk.READ
    ]
    for action in [*pending, *decided]:
        action_present(action, rating=_mine(action.my_ratings))  # type: ignore[attr-defined]
        action.comments_since = customer_comments_since(action, comments)  # type: ignore[attr-defined]
    route = next(
        (a for a in reversed(latest.calls) if a.tool == "route_ticket" and a.status == ProposedAction.Status.EXECUTED),  # type: ignore[attr-defined]
        None,
    ) if latest else None  # fmt: skip
    routing = (route.execution_result or {}).get("data") if route else None
    return SidebarPanel(
        ticket=ticket,
        run=latest,
        findings=step_findings(latest.transcript) if latest else [],  # type: ignore[attr-defined]
        routing=routing if isinstance(routing, dict) else None,
        pending=pending,
        decided=decided,
        active=any(run.status not in FINAL_RUN_STATUSES for run in runs),
    )
