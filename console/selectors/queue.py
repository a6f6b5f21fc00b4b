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
from console.ticket_search import decode_cursor, encode_cursor

# Each list shows this many rows, and a "Show more" link continues it by keyset: rendering the hundreds of rows a
# busy queue holds cost more than every query of the page together.
QUEUE_PAGE = 25
QUEUE_LISTS = ("pending", "escalations", "working")
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
class QueuePage:
    """One page of one of the queue's lists, and the cursor of the next ("" at the end)."""

    rows: list
    next_cursor: str = ""


@dataclass(frozen=True)
class Queue:
    actions: QueuePage  # of QueueItem
    escalations: QueuePage  # of AgentRun
    runs: QueuePage  # of AgentRun
    counts: QueueCounts
    workflows: list[Workflow]


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


def queue_page_get(
    *, name: str, workflow: int | None = None, phase: str = "", after: str = "", now: datetime | None = None
) -> QueuePage:
    """One page of a list of the queue (`name` in QUEUE_LISTS), after the cursor of the page before it: pending
    proposals oldest first; open escalations and working runs, most recently active first. Each reads its partial
    index in that order and stops after a page, whatever the list's length. A cursor this module did not make reads
    as the first page."""
    now = now or timezone.now()
    actions, escalations, working = _queue_sets(workflow, phase)
    cursor = decode_cursor(after) if after else None
    if name == "pending":
        if cursor is not None:
            moment, pk = cursor
            actions = actions.filter(Q(created_at__gt=moment) | Q(created_at=moment, pk__gt=pk))
        found = list(
            actions.select_related("run__ticket__tenant_link", "run__ticket__assignee", "run__workflow")
            .defer("run__ticket__raw_payload")  # the whole Zendesk event: no list shows it, and it outweighs the row
            .order_by("created_at", "id")[: QUEUE_PAGE + 1]
        )
        rows = [
            QueueItem(action, sla_overdue=bool(action.sla_due_at and action.sla_due_at <= now))
            for action in found[:QUEUE_PAGE]
        ]
        last = found[QUEUE_PAGE - 1].created_at if len(found) > QUEUE_PAGE else None
        return QueuePage(rows, encode_cursor(last, found[QUEUE_PAGE - 1].pk) if last else "")
    runs = escalations.select_related("ticket__assignee") if name == "escalations" else working
    if cursor is not None:
        moment, pk = cursor
        runs = runs.filter(Q(updated_at__lt=moment) | Q(updated_at=moment, pk__lt=pk))
    found = list(
        runs.select_related("ticket__tenant_link", "workflow")
        .defer("ticket__raw_payload")
        .order_by("-updated_at", "-id")[: QUEUE_PAGE + 1]
    )
    more = len(found) > QUEUE_PAGE
    found = found[:QUEUE_PAGE]
    return QueuePage(found, encode_cursor(found[-1].updated_at, found[-1].pk) if more else "")


def queue_get(*, workflow: int | None = None, phase: str = "") -> Queue:
    """The first page of each list, the counts of all three, and the workflows to filter by."""
    now = timezone.now()
    return Queue(
        actions=queue_page_get(name="pending", workflow=workflow, phase=phase, now=now),
        escalations=queue_page_get(name="escalations", workflow=workflow, phase=phase, now=now),
        runs=queue_page_get(name="working", workflow=workflow, phase=phase, now=now),
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
        .defer("run__ticket__raw_payload")
        .order_by("created_at", "id")
        .first()
    )
