"""The dashboard's weekly rollups (agent.models.rollups), kept up to date where what they count happens: a run that
ends adds its usage (and, completed outside shadow, its time to resolution); a human decision adds its wait. Each
is one INSERT ... ON CONFLICT DO UPDATE in the transaction of the change it counts, so a rolled-back change is never
counted. `rollups_rebuild` recomputes every row from the runs and proposals (the data migration's backfill and
`manage.py dashboard_rebuild`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Workflow
from agent.models.rollups import LatencyWeek, UsageWeek
from audit.services import Also

BUCKETS_PER_OCTAVE = 16
USAGE_FIELDS = ("runs", "tickets", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")

# The week's usage row, and what a second run in the same week adds to it.
_USAGE_INSERT = (
    "INSERT INTO agent_usageweek (week, engine, runs, tickets, tokens_in, tokens_out, cache_read_tokens, "
    "cache_write_tokens) "
)
_USAGE_ADD = (
    "ON CONFLICT (week, engine) DO UPDATE SET runs = agent_usageweek.runs + excluded.runs, "
    "tickets = agent_usageweek.tickets + excluded.tickets, "
    "tokens_in = agent_usageweek.tokens_in + excluded.tokens_in, "
    "tokens_out = agent_usageweek.tokens_out + excluded.tokens_out, "
    "cache_read_tokens = agent_usageweek.cache_read_tokens + excluded.cache_read_tokens, "
    "cache_write_tokens = agent_usageweek.cache_write_tokens + excluded.cache_write_tokens"
)
_ADD_LATENCY = (
    "INSERT INTO agent_latencyweek (kind, week, workflow_id, phase, bucket, count, seconds) "
    "VALUES (%s, %s, %s, %s, %s, 1, %s) "
    "ON CONFLICT (kind, week, workflow_id, phase, bucket) DO UPDATE SET "
    "count = agent_latencyweek.count + 1, seconds = agent_latencyweek.seconds + excluded.seconds"
)
# The run's usage as stored now (the row is locked by the status UPDATE before it: nothing changes under it). A
# ticket is counted by the run its creation started (at most one per ticket, by constraint): so the weeks add up
# without counting a ticket twice, and follow-ups and runs started by hand add usage to tickets already counted.
_ADD_USAGE = (
    _USAGE_INSERT + "SELECT %s, r.engine, 1, CASE WHEN r.trigger = 'ticket_created' THEN 1 ELSE 0 END, "
    "r.tokens_in, r.tokens_out, r.cache_read_tokens, r.cache_write_tokens "
    "FROM agent_agentrun r WHERE r.id = %s " + _USAGE_ADD
)


# rollup_run_finished_also's forms, in the statement of the UPDATE that ended the run: the run's usage as that
# UPDATE returns it (RUN_RETURNING) — a read of the table there would see the row as of the statement's start, not
# as locked — and the durations from `change`, so nothing is counted when the UPDATE changed nothing.
RUN_RETURNING = "engine, trigger, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens"
_ADD_USAGE_FROM_CHANGE = "".join(
    (
        _USAGE_INSERT,
        "SELECT %s, change.engine, 1, CASE WHEN change.trigger = 'ticket_created' THEN 1 ELSE 0 END, ",
        "change.tokens_in, change.tokens_out, change.cache_read_tokens, change.cache_write_tokens FROM change ",
        _USAGE_ADD,
    )
)
_ADD_LATENCY_FROM_CHANGE = (
    "INSERT INTO agent_latencyweek (kind, week, workflow_id, phase, bucket, count, seconds) "
    "SELECT %s, %s, %s, %s, %s, 1, %s FROM change "
    "ON CONFLICT (kind, week, workflow_id, phase, bucket) DO UPDATE SET "
    "count = agent_latencyweek.count + 1, seconds = agent_latencyweek.seconds + excluded.seconds"
)


def week_of(moment: datetime) -> date:
    """The Monday of the moment's week, in the site's time zone (TIME_ZONE), whoever asks."""
    day = timezone.localtime(moment, timezone.get_default_timezone()).date()
    return day - timedelta(days=day.weekday())


def bucket_of(seconds: float) -> int:
    return -1 if seconds < 1 else math.floor(BUCKETS_PER_OCTAVE * math.log2(seconds))


def _latency_add(*, kind: str, week: date, workflow_id: int | None, phase: str, seconds: float) -> None:
    seconds = max(seconds, 0.0)  # a clock that stepped back is no negative wait
    with connection.cursor() as cursor:
        cursor.execute(_ADD_LATENCY, [kind, week, workflow_id or 0, phase, bucket_of(seconds), seconds])


def rollup_run_finished(*, run: AgentRun) -> None:
    """Count a run that just ended (its finished_at set): its usage in the week it ended and, completed outside
    shadow (a shadow run resolves nothing), its ticket's time to resolution. Call inside the transaction that
    ended it, after its UPDATE."""
    with connection.cursor() as cursor:
        cursor.execute(_ADD_USAGE, [week_of(run.finished_at), run.pk])
    if run.status != AgentRun.Status.COMPLETED or run.phase == Workflow.Phase.SHADOW:
        return
    if AgentRun.ticket.is_cached(run):
        opened = run.ticket.created_at
    else:
        opened = type(run.ticket).objects.filter(pk=run.ticket_id).values_list("created_at", flat=True).get()
    _latency_add(
        kind=LatencyWeek.Kind.RESOLUTION,
        week=week_of(run.finished_at),
        workflow_id=run.workflow_id,
        phase=run.phase,
        seconds=(run.finished_at - opened).total_seconds(),
    )


def rollup_run_finished_also(*, run: AgentRun, status: str, finished_at: datetime) -> list[Also] | None:
    """rollup_run_finished as statements that go with the UPDATE that ends the run with this status at this time
    (audit.services.Also: PostgreSQL), which returns RUN_RETURNING: counted only if that UPDATE changed the row.
    None when the run's ticket is not loaded (then rollup_run_finished, after the UPDATE)."""
    if not AgentRun.ticket.is_cached(run):
        return None
    week = week_of(finished_at)
    also = [Also(_ADD_USAGE_FROM_CHANGE, [week])]
    if status == AgentRun.Status.COMPLETED and run.phase != Workflow.Phase.SHADOW:
        seconds = max((finished_at - run.ticket.created_at).total_seconds(), 0.0)
        kind = LatencyWeek.Kind.RESOLUTION
        also.append(
            Also(_ADD_LATENCY_FROM_CHANGE, [kind, week, run.workflow_id or 0, run.phase, bucket_of(seconds), seconds])
        )
    return also


def rollup_action_decided_also(*, action: ProposedAction) -> Also:
    """rollup_action_decided as a statement that goes with the decision's UPDATE (audit.services.Also: PostgreSQL),
    counted only if that changed the proposal."""
    seconds = max((action.decided_at - action.created_at).total_seconds(), 0.0)
    week, kind = week_of(action.decided_at), LatencyWeek.Kind.APPROVAL
    return Also(
        _ADD_LATENCY_FROM_CHANGE,
        [kind, week, action.run.workflow_id or 0, action.run.phase, bucket_of(seconds), seconds],
    )


def rollup_action_decided(*, action: ProposedAction) -> None:
    """Count a human decision (approve, reject, respond): how long the proposal waited for it."""
    _latency_add(
        kind=LatencyWeek.Kind.APPROVAL,
        week=week_of(action.decided_at),
        workflow_id=action.run.workflow_id,
        phase=action.run.phase,
        seconds=(action.decided_at - action.created_at).total_seconds(),
    )


def _models(apps: Any) -> tuple[Any, Any, Any, Any]:
    """The models as they are now, or as a migration's historical `apps` has them."""
    if apps is None:
        return AgentRun, ProposedAction, UsageWeek, LatencyWeek
    return tuple(apps.get_model("agent", name) for name in ("AgentRun", "ProposedAction", "UsageWeek", "LatencyWeek"))


@transaction.atomic
def rollups_rebuild(*, apps: Any = None, chunk: int = 5000) -> tuple[int, int]:
    """Recompute every rollup row from the runs and proposals, as the services would have counted them. Rows are
    locked against the services while it runs (PostgreSQL), so a change made meanwhile is counted once. Returns
    (usage rows, latency rows)."""
    run_model, action_model, usage_model, latency_model = _models(apps)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE agent_usageweek, agent_latencyweek IN EXCLUSIVE MODE")
    usage_model.objects.all().delete()
    latency_model.objects.all().delete()
    usage: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0] * len(USAGE_FIELDS))
    latency: dict[tuple[str, date, int, str, int], list[float]] = defaultdict(lambda: [0, 0.0])
    finished = run_model.objects.filter(finished_at__isnull=False).order_by().values_list(
        "trigger", "finished_at", "engine", "status", "phase", "workflow_id", "ticket__created_at",
        "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens",
    )  # fmt: skip
    for trigger, finished_at, engine, status, phase, workflow_id, opened, *tokens in finished.iterator(
        chunk_size=chunk
    ):
        week = week_of(finished_at)
        totals = usage[(week, engine)]
        for index, value in enumerate((1, int(trigger == AgentRun.Trigger.TICKET_CREATED), *tokens)):
            totals[index] += value
        if status == AgentRun.Status.COMPLETED and phase != Workflow.Phase.SHADOW:
            seconds = max((finished_at - opened).total_seconds(), 0.0)
            bucket = latency[(LatencyWeek.Kind.RESOLUTION, week, workflow_id or 0, phase, bucket_of(seconds))]
            bucket[0], bucket[1] = bucket[0] + 1, bucket[1] + seconds
    decided = action_model.objects.filter(decided_by__isnull=False, decided_at__isnull=False).order_by()
    for created_at, decided_at, workflow_id, phase in decided.values_list(
        "created_at", "decided_at", "run__workflow_id", "run__phase"
    ).iterator(chunk_size=chunk):
        seconds = max((decided_at - created_at).total_seconds(), 0.0)
        key = (LatencyWeek.Kind.APPROVAL, week_of(decided_at), workflow_id or 0, phase, bucket_of(seconds))
        latency[key][0] += 1
        latency[key][1] += seconds
    usage_model.objects.bulk_create(
        [
            usage_model(week=week, engine=engine, **dict(zip(USAGE_FIELDS, totals, strict=True)))
            for (week, engine), totals in usage.items()
        ],
        batch_size=chunk,
    )
    latency_model.objects.bulk_create(
        [
            latency_model(
                kind=kind, week=week, workflow_id=workflow_id, phase=phase, bucket=bucket, count=count, seconds=seconds
            )
            for (kind, week, workflow_id, phase, bucket), (count, seconds) in latency.items()
        ],
        batch_size=chunk,
    )
    return len(usage), len(latency)
