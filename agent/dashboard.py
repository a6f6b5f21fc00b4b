"""Read-side aggregations for the workflows page and the dashboard, and the inline SVG charts they draw.

Every function here runs a fixed number of queries whatever the number of workflows, runs or proposals. The
dashboard reads the weekly rollups the services keep (agent.models.rollups: sums, and histograms its percentiles
come from) and only the runs still open, so its work does not grow with the runs of its weeks.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from agent.models import AgentRun, LatencyWeek, UsageWeek, Workflow, WorkflowVersion
from agent.pricing import Usage, cost_usd
from agent.selectors.evidence import Evidence, version_evidence_many
from agent.services.rollups import week_of
from agent.suites import suite_unmet_many
from agent.versions import next_phase, phase_unmet, versions_in_force

# --- The workflows page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowCard:
    """One workflow with its evidence; a POST's view re-renders it with its outcome (error, unmet) replaced in."""

    workflow: Workflow
    evidence: Evidence  # of the version in force: what promotion is gated on
    unmet: list[str]  # what the next promotion still needs
    version: WorkflowVersion | None = None
    version_current: bool = True  # False: the content changed, and the next run makes a new version
    next_phase: str = ""
    error: str = ""
    error_unmet: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def version_number(self) -> str:
        """The version the evidence links filter on ("0" when there is none in force: no ticket matches)."""
        return str(self.version.number) if self.version is not None and self.version_current else "0"

    @property
    def approval_pct(self) -> str:
        return _pct(self.evidence.unedited_approval_rate)

    @property
    def edit_pct(self) -> str:
        return _pct(self.evidence.edit_rate)

    @property
    def verification_pct(self) -> str:
        return _pct(self.evidence.verification_pass_rate)

    @property
    def thumbs_pct(self) -> str:
        return _pct(self.evidence.thumbs_up_ratio)

    @property
    def median_resolution(self) -> str:
        return duration_text(self.evidence.median_resolution_seconds)

    @property
    def limit_lines(self) -> list[str]:
        """tool_limits as sentences, e.g. "extend_trial: days at most 14 per run"."""
        lines = []
        for tool, limits in sorted(self.workflow.tool_limits.items()):
            if isinstance(limits, dict):
                for arg, bounds in sorted(limits.items()):
                    words = bounds.items() if isinstance(bounds, dict) else [("=", bounds)]
                    lines.append(f"{tool}: {arg} " + ", ".join(_limit_words(key, value) for key, value in words))
            else:
                lines.append(f"{tool}: {limits}")
        return lines


LIMIT_WORDS = {
    "max": "at most {value} per run",
    "max_per_tenant_per_day": "at most {value} per tenant per day",
    "min": "at least {value} per call",
    "allowed": "one of {value}",
}


def _limit_words(key: str, value: object) -> str:
    return LIMIT_WORDS[key].format(value=value) if key in LIMIT_WORDS else f"{key} {value}"


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def duration_text(seconds: float | None) -> str:
    """3h 05m, 12m 30s or 45s; a dash when there is nothing to measure."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


WORKFLOW_ORDER = ("name", "id")


def workflow_cards(*, slug: str | None = None, workflows: list[Workflow] | None = None) -> list[WorkflowCard]:
    """Every workflow (or the one with this slug, or these already loaded) with the evidence of its version in
    force and what its next promotion still needs (the same criteria the promotion service applies), in a fixed
    number of queries."""
    if workflows is None:
        found = Workflow.objects.order_by(*WORKFLOW_ORDER)
        workflows = list(found.filter(slug=slug) if slug is not None else found)
    if not workflows:
        return []
    in_force = versions_in_force(workflows=workflows)
    versions = [version for version, current in in_force.values() if version is not None and current]
    evidence_of = version_evidence_many(version_ids=[version.pk for version in versions])
    suites = suite_unmet_many(versions=versions)
    cards = []
    for workflow in workflows:
        version, current = in_force[workflow.pk]
        evidence = evidence_of[version.pk] if version is not None and current else Evidence.empty()
        target = next_phase(workflow.phase)
        unmet = phase_unmet(evidence=evidence, phase=target)
        if version is not None and current:
            unmet += suites[version.pk]
        cards.append(
            WorkflowCard(
                workflow=workflow,
                evidence=evidence,
                unmet=unmet,
                version=version,
                version_current=current,
                next_phase=Workflow.Phase(target).label if target else "",
            )
        )
    return cards


# --- The dashboard ----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (statistics' "inclusive" method, numpy's default); p50 is the
    median. `fraction` is a whole percent: 0.5, 0.9."""
    if len(values) < 2:  # statistics.quantiles needs two points (Python 3.11)
        return float(values[0]) if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def histogram_percentile(buckets: Sequence[tuple[int, int, float]], fraction: float) -> float | None:
    """`percentile` over a histogram of (bucket, count, sum of its values): each value is taken as its bucket's
    mean, so the answer is exact while a bucket holds equal values and within half a bucket otherwise."""
    ordered = [(count, total / count) for _, count, total in sorted(buckets) if count]
    n = sum(count for count, _ in ordered)
    if not n:
        return None

    def value_at(rank: int) -> float:
        for count, mean in ordered:
            if rank < count:
                return mean
            rank -= count
        return ordered[-1][1]

    position = (n - 1) * fraction
    low = int(position)
    value = value_at(low)
    return value + (position - low) * (value_at(low + 1) - value) if position > low else value


week_start = week_of  # the Monday of a moment's week, in the site's time zone


@dataclass(frozen=True)
class ResolutionRow:
    week: date
    workflow: str
    phase: str
    tickets: int
    p50_hours: float
    p90_hours: float


@dataclass(frozen=True)
class ShareRow:
    week: date
    completed: int
    autonomous: int

    @property
    def share(self) -> float:
        return self.autonomous / self.completed if self.completed else 0.0


@dataclass(frozen=True)
class Dashboard:
    weeks: list[date]
    since: datetime
    resolution_rows: list[ResolutionRow]
    share_rows: list[ShareRow]
    completed: int
    autonomous: int
    approvals: int
    approval_p50_minutes: float | None
    approval_p90_minutes: float | None
    minutes_saved: float
    tickets: int  # tickets whose automatic run (the one their creation started) ended in the window, or is open
    tokens_in: int  # of the runs that ended in the window, and of those still open that started in it
    tokens_out: int
    cost_usd: float

    @property
    def autonomous_share(self) -> float | None:
        return self.autonomous / self.completed if self.completed else None

    @property
    def tokens_per_ticket(self) -> float | None:
        return (self.tokens_in + self.tokens_out) / self.tickets if self.tickets else None

    @property
    def cost_per_ticket(self) -> float | None:
        return self.cost_usd / self.tickets if self.tickets else None

    @property
    def resolution_chart(self) -> SafeString:
        labels = [week.strftime("%d %b") for week in self.weeks]
        series: dict[str, list[float | None]] = {}
        for row in self.resolution_rows:
            line = series.setdefault(f"{row.workflow} · {row.phase}", [None] * len(self.weeks))
            line[self.weeks.index(row.week)] = row.p50_hours
        return line_chart_svg(title="Median time to resolution (hours)", x_labels=labels, series=series)

    @property
    def share_chart(self) -> SafeString:
        return bar_chart_svg(
            title="Share of tickets resolved autonomously (%)",
            labels=[row.week.strftime("%d %b") for row in self.share_rows],
            values=[round(row.share * 100, 1) for row in self.share_rows],
        )


def _usage_by_engine(first: date, since: datetime) -> dict[str, list[int]]:
    """Token sums per engine: the weekly rollups of the runs that ended in the window, plus the runs still open
    that started in it (read from the partial index on open runs). Also "tickets": how many of those runs a
    ticket's creation started (one per ticket: follow-ups and runs started by hand count no new ticket)."""
    # The open runs are summed here rather than kept in a rollup: their tokens grow with every model turn (the
    # turn's own UPDATE, agent/services/transcript.py), not only when their status changes, so a kept sum would put
    # a write of one shared (week, engine) row into every turn's statement, and every worker's turns would queue on
    # it. Reading them costs one range of the partial index on open runs: their number, not the tickets'.
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    names = ("tickets", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens")
    ended = UsageWeek.objects.filter(week__gte=first).values("engine").annotate(**{n: Sum(n) for n in names})
    created = Q(trigger=AgentRun.Trigger.TICKET_CREATED)
    still_open = (
        AgentRun.objects.filter(finished_at__isnull=True, created_at__gte=since)
        .values("engine")
        .annotate(tickets=Count("pk", filter=created), **{n: Sum(n) for n in names[1:]})
    )
    for row in [*ended.order_by(), *still_open.order_by()]:
        for index, name in enumerate(names):
            totals[row["engine"]][index] += row[name] or 0
    return totals


def dashboard_get(*, weeks: int = 12, now: datetime | None = None) -> Dashboard:
    """The last `weeks` calendar weeks (Monday to Sunday, the current one included), from the weekly rollups
    (agent.models.rollups) and the runs still open, in four queries whatever the number of runs."""
    now = now or timezone.now()
    first = week_start(now) - timedelta(weeks=weeks - 1)
    buckets = [first + timedelta(weeks=n) for n in range(weeks)]
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()), timezone.get_default_timezone())
    resolution: dict[tuple[date, int, str], list[tuple[int, int, float]]] = defaultdict(list)
    approval: list[tuple[int, int, float]] = []
    found = LatencyWeek.objects.filter(week__gte=first).values_list(
        "kind", "week", "workflow_id", "phase", "bucket", "count", "seconds"
    )
    for kind, week, workflow_id, phase, bucket, count, seconds in found:
        if kind == LatencyWeek.Kind.APPROVAL:
            approval.append((bucket, count, seconds / 60))
        else:
            resolution[(week, workflow_id, phase)].append((bucket, count, seconds / 3600))
    names = dict(Workflow.objects.filter(pk__in={key[1] for key in resolution}).values_list("pk", "name"))
    rows = sorted(
        (
            ResolutionRow(
                week=week,
                workflow=names.get(workflow_id) or "No workflow",
                phase=phase,
                tickets=sum(count for _, count, _ in histogram),
                p50_hours=histogram_percentile(histogram, 0.5),
                p90_hours=histogram_percentile(histogram, 0.9),
            )
            for (week, workflow_id, phase), histogram in resolution.items()
        ),
        key=lambda r: (r.week, r.workflow, r.phase),
    )
    completed: dict[date, int] = defaultdict(int)
    autonomous: dict[date, int] = defaultdict(int)
    for row in rows:
        completed[row.week] += row.tickets
        autonomous[row.week] += row.tickets if row.phase == Workflow.Phase.AUTONOMOUS else 0
    usage = _usage_by_engine(first, since)
    resolved_alone = sum(autonomous.values())
    return Dashboard(
        weeks=buckets,
        since=since,
        resolution_rows=rows,
        share_rows=[ShareRow(week, completed[week], autonomous[week]) for week in buckets],
        completed=sum(completed.values()),
        autonomous=resolved_alone,
        approvals=sum(count for _, count, _ in approval),
        approval_p50_minutes=histogram_percentile(approval, 0.5),
        approval_p90_minutes=histogram_percentile(approval, 0.9),
        minutes_saved=resolved_alone * settings.REVIEWER_MINUTES_PER_TICKET,
        tickets=sum(totals[0] for totals in usage.values()),
        tokens_in=sum(totals[1] for totals in usage.values()),
        tokens_out=sum(totals[2] for totals in usage.values()),
        cost_usd=sum(cost_usd(engine=engine, usage=Usage(*totals[1:])) for engine, totals in usage.items()),
    )


# --- Inline SVG charts -------------------------------------------------------------------------------------------
# Every label goes through escape(); mark_safe is applied only to the markup built here.

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 260, 48, 16, 28, 40
LEGEND_COLUMNS, LEGEND_ROW, MAX_X_LABELS = 3, 18, 13
PALETTE = ("#2457d6", "#b45309", "#067647", "#b42318", "#6941c6", "#0e7490", "#475467")


def _number(value: float) -> str:
    # Two significant digits below 1, so a sub-minute scale does not read "0" at both ends of the axis.
    if value and abs(value) < 1:
        return f"{value:.2g}"
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _frame(title: str, top_value: float, x_labels: Sequence[str], x_of: list[float], extra: int = 0) -> list[str]:
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT + extra}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{escape(_number(top_value))}</text>',
        f'<text x="{LEFT - 6}" y="{bottom}" text-anchor="end">0</text>',
    ]
    every = -(-len(x_labels) // MAX_X_LABELS)  # beyond a dozen labels, name every other (or third) one
    for number, (label, x) in enumerate(zip(x_labels, x_of, strict=True)):
        if (len(x_labels) - 1 - number) % every:
            continue
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>')
    return parts


def _y(value: float, top_value: float) -> float:
    return HEIGHT - BOTTOM - (value / top_value) * (HEIGHT - BOTTOM - TOP)


def line_chart_svg(*, title: str, x_labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> SafeString:
    """One polyline per series over shared x labels; None is a gap (a marker only where a point stands alone)."""
    values = [v for line in series.values() for v in line if v is not None]
    top_value = max(values, default=0) or 1
    step = (WIDTH - LEFT - RIGHT) / max(len(x_labels), 1)
    x_of = [LEFT + step * (n + 0.5) for n in range(len(x_labels))]
    legend_rows = (len(series) + LEGEND_COLUMNS - 1) // LEGEND_COLUMNS
    parts = _frame(title, top_value, x_labels, x_of, extra=LEGEND_ROW * legend_rows)
    for number, (name, line) in enumerate(series.items()):
        colour = PALETTE[number % len(PALETTE)]
        points = [(x_of[n], _y(v, top_value)) for n, v in enumerate(line) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points)
        column, row = number % LEGEND_COLUMNS, number // LEGEND_COLUMNS
        x, y = LEFT + column * (WIDTH - LEFT) // LEGEND_COLUMNS, HEIGHT + LEGEND_ROW * row
        parts.append(f'<text x="{x}" y="{y}" fill="{colour}" class="legend">■ {escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every interpolated label was escaped above


def bar_chart_svg(*, title: str, labels: Sequence[str], values: Sequence[float]) -> SafeString:
    """One bar per label, its value written above it."""
    top_value = max(values, default=0) or 1
    step = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    x_of = [LEFT + step * (n + 0.5) for n in range(len(labels))]
    parts = _frame(title, top_value, labels, x_of)
    for x, value in zip(x_of, values, strict=True):
        y = _y(value, top_value)
        parts.append(
            f'<rect x="{x - step * 0.35:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}" class="bar"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">{escape(_number(value))}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every interpolated label was escaped above
