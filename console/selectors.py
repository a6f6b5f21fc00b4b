"""Reads of the console's screens. Each returns everything one screen needs in a fixed number of queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlglot
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Count, IntegerField, Prefetch, Q, Value, When

from agent.findings import Finding, finding_of, step_findings
from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from tickets.models import Ticket, TicketComment

QUEUE_LIMIT = 100
ACTIVE_RUN_STATUSES = (AgentRun.Status.RUNNING, AgentRun.Status.AWAITING_APPROVAL, AgentRun.Status.ESCALATED)
FINAL_RUN_STATUSES = frozenset({AgentRun.Status.COMPLETED, AgentRun.Status.ESCALATED, AgentRun.Status.FAILED})
# Drafted text a reviewer rates as a step: the note or reply the agent wrote.
DRAFT_TOOLS = frozenset({"add_private_note", "reply_to_customer"})


# --- The queue -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    running: int
    escalated: int


@dataclass(frozen=True)
class Queue:
    actions: list[ProposedAction]
    runs: list[AgentRun]
    counts: QueueCounts
    workflows: list[Workflow]
    limit: int = QUEUE_LIMIT


def queue_counts() -> QueueCounts:
    """The three live numbers of the queue, in one query each way they are asked."""
    runs = AgentRun.objects.aggregate(
        running=Count("id", filter=Q(status=AgentRun.Status.RUNNING)),
        escalated=Count("id", filter=Q(status=AgentRun.Status.ESCALATED)),
    )
    pending = ProposedAction.objects.filter(status=ProposedAction.Status.PENDING).count()
    return QueueCounts(pending=pending, running=runs["running"], escalated=runs["escalated"])


def queue_get(*, workflow: int | None = None, phase: str = "", status: str = "") -> Queue:
    """Pending proposals oldest first, then active runs most recently updated first (escalated runs pile up:
    the ones that moved last matter most); workflow and phase filter both lists, status the runs."""
    scope = Q()
    if workflow:
        scope &= Q(workflow_id=workflow)
    if phase:
        scope &= Q(phase=phase)
    runs = AgentRun.objects.filter(scope, status__in=[status] if status else ACTIVE_RUN_STATUSES)
    actions = (
        ProposedAction.objects.filter(status=ProposedAction.Status.PENDING, run__in=AgentRun.objects.filter(scope))
        .select_related("run__ticket__tenant_link", "run__workflow")
        .order_by("created_at", "id")[:QUEUE_LIMIT]
    )
    return Queue(
        actions=list(actions),
        runs=list(runs.select_related("ticket__tenant_link", "workflow").order_by("-updated_at", "-id")[:QUEUE_LIMIT]),
        counts=queue_counts(),
        workflows=list(Workflow.objects.order_by("name")),
    )


# --- The ticket page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    comments: list[TicketComment]
    runs: list[AgentRun]
    any_run_active: bool


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


def action_present(action: ProposedAction, *, rating: Rating | None) -> ProposedAction:
    """Attach what the action card shows. Pure: no queries, so views may call it on a service's result."""
    action.pretty_args, action.args_are_sql = _pretty_args(action.tool, action.args)  # type: ignore[attr-defined]
    action.args_json = _pretty_json(action.args)  # type: ignore[attr-defined]
    action.my_rating = rating  # type: ignore[attr-defined]
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
    return action


def step_present(step: Step, *, rating: Rating | None, call_args: dict[str, Any] | None = None) -> Step:
    """Attach what the transcript shows for one step. Pure, like action_present. An observation of a read gets the
    one line a person reads (what it found); its full output stays one click away."""
    step.pretty_input, step.input_is_sql = _pretty_args(step.tool_name, step.tool_input)  # type: ignore[attr-defined]
    finding = finding_of(step.tool_name, call_args, step.tool_output) if step.kind == Step.Kind.OBSERVATION else None
    step.summary = finding.line if finding is not None and finding.ok else ""  # type: ignore[attr-defined]
    step.pretty_output = _pretty_json(step.tool_output) if step.tool_output is not None else ""  # type: ignore[attr-defined]
    step.is_draft = step.kind == Step.Kind.ACTION and step.tool_name in DRAFT_TOOLS  # type: ignore[attr-defined]
    step.draft_text = (step.tool_input or {}).get("body", "") if step.is_draft else ""  # type: ignore[attr-defined]
    step.my_rating = rating  # type: ignore[attr-defined]
    return step


def _mine(ratings: list[Rating]) -> Rating | None:
    return ratings[0] if ratings else None


def ticket_detail_get(*, ticket_id: int, user: AbstractBaseUser) -> TicketDetail | None:
    """A ticket, its comments, and each run's transcript with its proposals and this user's ratings."""
    ticket = Ticket.objects.select_related("tenant_link").filter(pk=ticket_id).first()
    if ticket is None:
        return None
    my_ratings = Rating.objects.filter(user=user)
    actions = ProposedAction.objects.select_related("decided_by").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings")
    )
    steps = Step.objects.order_by("index").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings"),
        Prefetch("actions", queryset=actions, to_attr="proposals"),
    )
    runs = list(
        AgentRun.objects.filter(ticket=ticket)
        .select_related("workflow")
        .prefetch_related(Prefetch("steps", queryset=steps, to_attr="transcript"))
        .order_by("created_at", "id")
    )
    comments = list(ticket.comments.order_by("created_at", "id"))
    for run in runs:
        run.is_final = run.status in FINAL_RUN_STATUSES  # type: ignore[attr-defined]
        run.trigger_comment_shown = next(  # type: ignore[attr-defined]
            (c for c in comments if c.pk == run.trigger_comment_id), None
        )
        args = {s.tool_call_id: s.tool_input for s in run.transcript if s.kind == Step.Kind.ACTION}  # type: ignore[attr-defined]
        for step in run.transcript:  # type: ignore[attr-defined]
            step_present(step, rating=_mine(step.my_ratings), call_args=args.get(step.tool_call_id))
            for action in step.proposals:
                action_present(action, rating=_mine(action.my_ratings))
                action.comments_since = customer_comments_since(action, comments)  # type: ignore[attr-defined]
    return TicketDetail(
        ticket=ticket,
        comments=comments,
        runs=runs,
        any_run_active=any(not run.is_final for run in runs),  # type: ignore[attr-defined]
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


def action_get(*, action_id: int, user: AbstractBaseUser) -> ProposedAction | None:
    """One proposal for its card, with this user's rating."""
    action = (
        ProposedAction.objects.select_related("run", "decided_by")
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
    return action


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
    findings: list[Finding]
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
