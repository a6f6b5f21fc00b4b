"""Read-side aggregations for the workflows page and the dashboard, and the inline SVG charts they draw.

Every function here runs a fixed number of queries whatever the number of workflows, runs or proposals:
counts, sums and (in PostgreSQL) percentiles are aggregated in the database, so the work does not grow with the
rows; on SQLite (the demo) percentiles are computed in Python from one values_list each.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from agent.aggregates import Percentile, seconds_between
from agent.models import AgentRun, ProposedAction, Workflow, WorkflowVersion
from agent.pricing import Usage, cost_usd
from agent.selectors.evidence import Evidence, version_evidence_many
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


def week_start(moment: datetime) -> date:
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday())


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
    tickets: int
    tokens_in: int
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


def _cost_by_engine(since: datetime) -> float:
    """What Bedrock bills for the window's runs: token sums per engine in SQL, each priced by its model, cache
    reads and writes at their own prices (agent.pricing)."""
    rows = (
        AgentRun.objects.filter(created_at__gte=since)
        .values("engine")
        .annotate(
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cache_read=Sum("cache_read_tokens"),
            cache_write=Sum("cache_write_tokens"),
        )
        .order_by()
    )
    return sum(
        cost_usd(
            engine=row["engine"],
            usage=Usage(row["tokens_in"] or 0, row["tokens_out"] or 0, row["cache_read"] or 0, row["cache_write"] or 0),
        )
        for row in rows
    )


def _resolution_rows(since: datetime) -> list[ResolutionRow]:
    """Percentiles of the hours from a ticket's creation to its run's completion, by week, workflow and phase. In
    PostgreSQL they are aggregated there (one row per group, whatever the number of runs); elsewhere (the demo's
    SQLite) in Python. A shadow run completes by posting its drafts: it resolves nothing, so it is no resolution."""
    runs = AgentRun.objects.filter(status=AgentRun.Status.COMPLETED, finished_at__gte=since).exclude(
        phase=Workflow.Phase.SHADOW
    )
    if connection.vendor == "postgresql":
        hours = seconds_between("ticket__created_at", "finished_at") / 3600
        grouped = (
            runs.annotate(week=TruncWeek("finished_at"))
            .values("week", "workflow__name", "phase")
            .annotate(n=Count("id"), p50=Percentile(hours, 0.5), p90=Percentile(hours, 0.9))
            .order_by()
        )
        rows = [
            ResolutionRow(week_start(g["week"]), g["workflow__name"] or "No workflow", g["phase"], g["n"], g["p50"],
                          g["p90"])
            for g in grouped
        ]  # fmt: skip
        return sorted(rows, key=lambda r: (r.week, r.workflow, r.phase))
    groups: dict[tuple[date, str, str], list[float]] = defaultdict(list)
    found = runs.values_list("workflow__name", "phase", "finished_at", "ticket__created_at")
    for name, phase, finished, opened in found:
        groups[(week_start(finished), name or "No workflow", phase)].append((finished - opened).total_seconds() / 3600)
    return [
        ResolutionRow(week, name, phase, len(hours), percentile(hours, 0.5), percentile(hours, 0.9))
        for (week, name, phase), hours in sorted(groups.items())
    ]


def _approval_minutes(since: datetime) -> tuple[int, float | None, float | None]:
    """How many proposals people decided in the window, and the p50 and p90 of the minutes each waited."""
    decided = ProposedAction.objects.filter(decided_by__isnull=False, decided_at__gte=since)
    if connection.vendor == "postgresql":
        minutes = seconds_between("created_at", "decided_at") / 60
        found = decided.aggregate(n=Count("id"), p50=Percentile(minutes, 0.5), p90=Percentile(minutes, 0.9))
        return found["n"], found["p50"], found["p90"]
    latencies = [(d - c).total_seconds() / 60 for c, d in decided.values_list("created_at", "decided_at")]
    return len(latencies), percentile(latencies, 0.5), percentile(latencies, 0.9)


def dashboard_get(*, weeks: int = 12, now: datetime | None = None) -> Dashboard:
    """The last `weeks` calendar weeks (Monday to Sunday, the current one included), in four queries."""
    now = now or timezone.now()
    first = week_start(now) - timedelta(weeks=weeks - 1)
    buckets = [first + timedelta(weeks=n) for n in range(weeks)]
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = _resolution_rows(since)
    completed: dict[date, int] = defaultdict(int)
    autonomous: dict[date, int] = defaultdict(int)
    for row in rows:
        completed[row.week] += row.tickets
        autonomous[row.week] += row.tickets if row.phase == Workflow.Phase.AUTONOMOUS else 0
    approvals, approval_p50, approval_p90 = _approval_minutes(since)
    tokens = AgentRun.objects.filter(created_at__gte=since).aggregate(
        tokens_in=Coalesce(Sum("tokens_in"), 0),
        tokens_out=Coalesce(Sum("tokens_out"), 0),
        tickets=Count("ticket", distinct=True),
    )
    resolved_alone = sum(autonomous.values())
    return Dashboard(
        weeks=buckets,
        since=since,
        resolution_rows=rows,
        share_rows=[ShareRow(week, completed[week], autonomous[week]) for week in buckets],
        completed=sum(completed.values()),
        autonomous=resolved_alone,
        approvals=approvals,
        approval_p50_minutes=approval_p50,
        approval_p90_minutes=approval_p90,
        minutes_saved=resolved_alone * settings.REVIEWER_MINUTES_PER_TICKET,
        tickets=tokens["tickets"],
        tokens_in=tokens["tokens_in"],
        tokens_out=tokens["tokens_out"],
        cost_usd=_cost_by_engine(since),
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
