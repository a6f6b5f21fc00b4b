"""The queue: what waits for reviewers, counted and listed, and the next pending decision (Play mode)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from agent.lifecycle import RUN_CLOSABLE, RUN_WORKING
from agent.models import AgentRun, ProposedAction, Workflow

QUEUE_LIMIT = 100
OPEN_ESCALATION = Q(status__in=RUN_CLOSABLE, outcome="")


@dataclass(frozen=True)
class QueueCounts:
    pending: int
    overdue: int
    escalated: int
    running: int
    queued: int


@dataclass(frozen=True)
class QueueItem:
    """One pending proposal in the queue, and whether its approval SLA has passed."""

    action: ProposedAction
    sla_overdue: bool


@dataclass(frozen=True)
class Queue:
    actions: list[QueueItem]
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
    actions = ProposedAction.objects.filter(status=ProposedAction.Status.PENDING)
    if scope:
        actions = actions.filter(run__in=AgentRun.objects.filter(scope))
    escalations = AgentRun.objects.filter(scope & OPEN_ESCALATION)
    working = AgentRun.objects.filter(scope, status__in=RUN_WORKING)
    return actions, escalations, working


def _counts(querysets: dict[str, QuerySet]) -> dict[str, int]:
    """Several counts in one round trip: SELECT (SELECT COUNT(*) FROM (...)), ... Each subquery reads only the
    primary keys of its rows, so a partial index that holds them answers it alone."""
    parts, params = [], []
    for queryset in querysets.values():
        sql, found = queryset.order_by().values("pk").query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS counted)")  # noqa: S608 -- the ORM's own SQL and params
        params.extend(found)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return dict(zip(querysets, row, strict=True))


def queue_counts(*, workflow: int | None = None, phase: str = "", now: datetime | None = None) -> QueueCounts:
    """The queue's live numbers, for the same filters as its lists, in one query. Each is the count of its list's
    own queryset, read from the partial index on those rows (pending proposals, open escalations, working runs),
    so the cost follows the queue's length, not the tables'."""
    now = now or timezone.now()
    actions, escalations, working = _queue_sets(workflow, phase)
    counts = _counts(
        {
            "pending": actions,
            "overdue": actions.filter(sla_due_at__lte=now),
            "escalated": escalations,
            "running": working.filter(status=AgentRun.Status.RUNNING),
            "queued": working.filter(status=AgentRun.Status.QUEUED),
        }
    )
    return QueueCounts(**counts)


def queue_get(*, workflow: int | None = None, phase: str = "") -> Queue:
    """Pending proposals oldest first; open escalations and working runs, most recently active first."""
    now = timezone.now()
    actions, escalations, working = _queue_sets(workflow, phase)
    return Queue(
        actions=[
            QueueItem(action, sla_overdue=bool(action.sla_due_at and action.sla_due_at <= now))
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
