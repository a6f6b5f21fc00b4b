from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from agent.dashboard import bar_chart_svg, dashboard_get, line_chart_svg, percentile
from agent.models import AgentRun, ProposedAction, Workflow
from agent.services.rollups import rollups_rebuild
from tests.factories import AgentRunFactory, ProposedActionFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

URL = "/workflows/dashboard/"
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday; its week starts Monday 16 November
HOUR = timedelta(hours=1)


def _completed_run(workflow: Workflow | None, phase: str, *, opened: datetime, hours: float, **fields) -> AgentRun:
    ticket = TicketFactory()
    run = AgentRunFactory(
        ticket=ticket, workflow=workflow, phase=phase, status="completed", finished_at=opened + hours * HOUR,
        trigger="ticket_created", **fields,
    )  # fmt: skip
    type(ticket).objects.filter(pk=ticket.pk).update(created_at=opened)
    AgentRun.objects.filter(pk=run.pk).update(created_at=opened)
    return run


def _human_decision(minutes: int, *, created: datetime, **fields) -> ProposedAction:
    action = ProposedActionFactory(
        decided_by=UserFactory(), decided_at=created + timedelta(minutes=minutes), status="approved", **fields
    )
    ProposedAction.objects.filter(pk=action.pk).update(created_at=created)
    return action


@pytest.fixture
def small_world() -> Workflow:
    cache = WorkflowFactory(name="Stale cache")
    this_week = NOW - 20 * HOUR  # Tuesday 17 November
    for hours in (1, 2, 4):
        _completed_run(cache, "triage", opened=this_week, hours=hours, tokens_in=500_000, tokens_out=50_000)
    _completed_run(cache, "autonomous", opened=this_week, hours=0.5, tokens_in=1_000_000, tokens_out=100_000)
    _completed_run(cache, "triage", opened=NOW - timedelta(days=7), hours=3)  # week of 9 November
    _completed_run(cache, "triage", opened=NOW - timedelta(weeks=20), hours=1, tokens_in=9_000_000)  # too old
    escalated = AgentRunFactory(
        workflow=cache, status="escalated", tokens_in=0, tokens_out=200_000, trigger="ticket_created"
    )
    AgentRun.objects.filter(pk=escalated.pk).update(created_at=this_week)
    for minutes in (10, 20, 30, 40):
        _human_decision(minutes, created=this_week, run=escalated, tool_call_id=f"c{minutes}")
    ProposedActionFactory(run=escalated, status="approved", decided_at=this_week)  # pre-approved: no human
    rollups_rebuild()  # rows made by factories, not by the services that keep the rollups
    return cache


def test_it_computes_percentiles_by_linear_interpolation() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.9) == 4.0
    assert percentile([4.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 4.0], 0.9) == pytest.approx(3.6)
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0


def test_it_computes_the_dashboard_figures(small_world, settings) -> None:
    settings.REVIEWER_MINUTES_PER_TICKET = 10
    settings.BEDROCK_INPUT_USD_PER_MTOK = 3.0
    settings.BEDROCK_OUTPUT_USD_PER_MTOK = 15.0

    board = dashboard_get(weeks=12, now=NOW)

    assert board.weeks[-1] == date(2026, 11, 16)
    assert board.weeks[0] == date(2026, 8, 31)
    rows = {(row.week, row.phase): row for row in board.resolution_rows}
    assert set(rows) == {
        (date(2026, 11, 16), "triage"),
        (date(2026, 11, 16), "autonomous"),
        (date(2026, 11, 9), "triage"),
    }
    triage = rows[(date(2026, 11, 16), "triage")]
    assert (triage.workflow, triage.tickets, triage.p50_hours) == ("Stale cache", 3, 2.0)
    assert triage.p90_hours == pytest.approx(3.6)
    assert rows[(date(2026, 11, 9), "triage")].p50_hours == 3.0
    assert (board.completed, board.autonomous, board.autonomous_share) == (5, 1, 0.2)
    assert board.share_rows[-1].completed == 4
    assert board.share_rows[-1].share == 0.25
    assert board.minutes_saved == 10
    assert (board.approvals, board.approval_p50_minutes) == (4, 25.0)
    assert board.approval_p90_minutes == pytest.approx(37.0)
    # 3 x (0.5M in, 50k out) + (1M in, 100k out) + the escalated run's 200k out; the 20-week-old run is outside
    assert (board.tokens_in, board.tokens_out, board.tickets) == (2_500_000, 450_000, 6)
    assert board.cost_usd == pytest.approx(2.5 * 3 + 0.45 * 15)
    assert board.cost_per_ticket == pytest.approx((7.5 + 6.75) / 6)


def test_it_prices_cache_reads_and_writes_apart_and_each_model_at_its_own_prices(settings) -> None:
    settings.BEDROCK_INPUT_USD_PER_MTOK, settings.BEDROCK_OUTPUT_USD_PER_MTOK = 3.0, 15.0
    settings.BEDROCK_CACHE_READ_USD_PER_MTOK, settings.BEDROCK_CACHE_WRITE_USD_PER_MTOK = 0.3, 3.75
    settings.BEDROCK_MODEL_PRICES = {"claude-haiku": {"input": 1.0, "output": 5.0, "cache_read": 0.1}}
    sonnet, haiku = "bedrock:us.anthropic.claude-sonnet-4-6", "bedrock:us.anthropic.claude-haiku-4-5"
    # tokens_in counts every input token: 1M of them, of which 600k read from the cache and 300k written to it.
    for engine in (sonnet, sonnet, haiku):
        AgentRunFactory(engine=engine, tokens_in=1_000_000, tokens_out=100_000, cache_read_tokens=600_000,
                        cache_write_tokens=300_000)  # fmt: skip
    AgentRunFactory(engine="offline", tokens_in=0, tokens_out=0)

    board = dashboard_get(weeks=1)

    per_sonnet_run = 0.1 * 3.0 + 0.1 * 15.0 + 0.6 * 0.3 + 0.3 * 3.75
    per_haiku_run = 0.1 * 1.0 + 0.1 * 5.0 + 0.6 * 0.1 + 0.3 * 3.75  # cache writes at the default price
    assert board.cost_usd == pytest.approx(2 * per_sonnet_run + per_haiku_run)


def test_it_reports_nothing_rather_than_zero_on_an_empty_window() -> None:
    board = dashboard_get(weeks=4, now=NOW)
    assert len(board.weeks) == len(board.share_rows) == 4
    assert board.resolution_rows == []
    assert board.autonomous_share is None
    assert board.approval_p50_minutes is None
    assert board.cost_per_ticket is None


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    response = anonymous.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_it_shows_an_outsider_nothing(outsider) -> None:
    assert outsider.get(URL).status_code == 403


def test_it_accepts_only_get(reviewer) -> None:
    assert reviewer.post(URL).status_code == 405


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_shows_the_figures_and_charts(request, client_name, settings) -> None:
    settings.REVIEWER_MINUTES_PER_TICKET = 12
    cache = WorkflowFactory(name="Stale <b>cache</b>")
    opened = timezone.now() - 5 * HOUR
    _completed_run(cache, "autonomous", opened=opened, hours=2, tokens_in=1_000_000, tokens_out=0)
    _completed_run(cache, "triage", opened=opened, hours=4, tokens_in=1_000_000, tokens_out=0)
    rollups_rebuild()
    response = request.getfixturevalue(client_name).get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert '<strong data-testid="autonomous-share">50%</strong>' in body
    assert '<strong data-testid="minutes-saved">12 min</strong>' in body
    assert '<strong data-testid="cost-per-ticket">$3.0000</strong>' in body
    assert body.count("<svg") == 2
    assert "Stale &lt;b&gt;cache&lt;/b&gt; · autonomous" in body  # in the chart legend and the table
    assert "<b>cache</b>" not in body
    assert 'data-testid="resolution-table"' in body


def test_it_serves_the_body_as_a_fragment_to_htmx(reviewer) -> None:
    response = reviewer.get(URL, {"weeks": 4}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b'id="dashboard-body"' in response.content
    assert b"<html" not in response.content
    assert b"(4 weeks" in response.content


def test_it_falls_back_to_twelve_weeks_on_a_bad_window(reviewer) -> None:
    response = reviewer.get(URL, {"weeks": "9999"})
    assert response.status_code == 200
    assert b"(12 weeks" in response.content


def test_it_builds_the_dashboard_in_a_fixed_number_of_queries(reviewer, django_assert_max_num_queries) -> None:
    workflows = WorkflowFactory.create_batch(5)
    opened = timezone.now() - 30 * HOUR
    for n in range(40):
        run = _completed_run(workflows[n % 5], ("triage", "autonomous")[n % 2], opened=opened, hours=n % 7 + 1)
        _human_decision(n + 1, created=opened, run=run, tool_call_id="c")
    rollups_rebuild()
    # session, user, groups, then the latency rollups, workflow names, usage rollups and the open runs' usage
    with django_assert_max_num_queries(7):
        response = reviewer.get(URL)
    assert response.status_code == 200
    assert response.content.count(b"<polyline") == 10  # 5 workflows x 2 phases


# --- the SVG helpers -----------------------------------------------------------------------------------------


def test_it_escapes_labels_in_the_line_chart() -> None:
    svg = line_chart_svg(
        title='Time "<script>"',
        x_labels=["<img src=x>", "b"],
        series={"<script>alert(1)</script>": [1.0, None], "ok": [2.0, 3.0]},
    )
    assert "<script>" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "&lt;img src=x&gt;" in svg
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 3  # None leaves a gap
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert hasattr(svg, "__html__")


def test_it_escapes_labels_in_the_bar_chart() -> None:
    svg = bar_chart_svg(title="<t>", labels=["<a>", "b&c"], values=[50.0, 25.0])
    assert "<a>" not in svg and "<t>" not in svg
    assert "&lt;a&gt;" in svg and "b&amp;c" in svg
    assert svg.count("<rect") == 2
    heights = [float(part.split('"')[0]) for part in svg.split('height="')[1:]]
    assert heights[0] == pytest.approx(2 * heights[1])  # bars scale with their values


def test_it_names_every_week_of_twelve_but_thins_out_twenty_six() -> None:
    twelve = bar_chart_svg(title="t", labels=[f"w{n}" for n in range(12)], values=[1.0] * 12)
    assert all(f">w{n}<" in twelve for n in range(12))
    many = bar_chart_svg(title="t", labels=[f"w{n}" for n in range(26)], values=[1.0] * 26)
    assert ">w25<" in many and ">w23<" in many
    assert ">w24<" not in many
    assert many.count("<rect") == 26


def test_it_charts_an_empty_series_without_dividing_by_zero() -> None:
    assert line_chart_svg(title="t", x_labels=[], series={}).count("<polyline") == 0
    assert bar_chart_svg(title="t", labels=["a"], values=[0.0]).count("<rect") == 1


def test_it_never_counts_a_shadow_run_as_a_resolved_ticket(reviewer) -> None:
    from django.utils import timezone

    from agent.dashboard import dashboard_get

    AgentRunFactory(status="completed", phase="shadow", finished_at=timezone.now())
    AgentRunFactory(status="completed", phase="autonomous", finished_at=timezone.now())
    rollups_rebuild()
    dashboard = dashboard_get(weeks=2)
    assert (dashboard.completed, dashboard.autonomous) == (1, 1)
