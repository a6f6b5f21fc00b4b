"""The dashboard's weekly rollups: kept by the services as runs end and people decide, equal to a rebuild from the
rows, never counting a change that rolled back."""

from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from agent.dashboard import dashboard_get, histogram_percentile, percentile
from agent.models import AgentRun, LatencyWeek, UsageWeek
from agent.services.actions import proposed_action_approve, proposed_action_reject
from agent.services.rollups import bucket_of, rollups_rebuild
from agent.services.runs import agent_run_transition
from tests.factories import AgentRunFactory, ProposedActionFactory, TicketFactory, UserFactory, WorkflowFactory
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def _run(*, hours_open: float, **fields) -> AgentRun:
    ticket = TicketFactory()
    Ticket.objects.filter(pk=ticket.pk).update(created_at=timezone.now() - timedelta(hours=hours_open))
    ticket = Ticket.objects.get(pk=ticket.pk)
    return AgentRunFactory(ticket=ticket, status="running", trigger="ticket_created", **fields)


def test_it_keeps_the_rollups_as_runs_end_and_people_decide_and_a_rebuild_agrees() -> None:
    cache = WorkflowFactory(name="Stale cache")
    reviewer = UserFactory(groups=["reviewers"])
    now = timezone.now()
    for hours in (1, 2, 4):
        run = _run(hours_open=hours, workflow=cache, phase="triage", tokens_in=1000, tokens_out=100, engine="e1")
        agent_run_transition(run=run, status="completed")
    shadow = _run(hours_open=3, workflow=cache, phase="shadow", tokens_in=500, cache_read_tokens=200, engine="e2")
    agent_run_transition(run=shadow, status="completed")  # usage, but no resolution: a shadow run drafts
    follow_up = AgentRunFactory(ticket=shadow.ticket, status="running", tokens_in=7)  # started by hand
    agent_run_transition(run=follow_up, status="escalated")  # its ticket is counted once
    waiting = _run(hours_open=1, workflow=cache, phase="triage", tokens_in=300, engine="e1")
    waiting.status = "awaiting_approval"
    AgentRun.objects.filter(pk=waiting.pk).update(status="awaiting_approval")
    for minutes, decide in ((10, "approve"), (30, "reject")):
        action = ProposedActionFactory(run=waiting, status="pending", tool_call_id=f"c{minutes}")
        type(action).objects.filter(pk=action.pk).update(created_at=now - timedelta(minutes=minutes))
        action.refresh_from_db()
        if decide == "approve":
            proposed_action_approve(action=action, user=reviewer)
        else:
            proposed_action_reject(action=action, user=reviewer, reason="Wrong tenant.")

    kept = dashboard_get(weeks=2, now=now)
    assert [(row.workflow, row.phase, row.tickets) for row in kept.resolution_rows] == [("Stale cache", "triage", 3)]
    assert kept.resolution_rows[0].p50_hours == pytest.approx(2.0, rel=0.01)
    assert (kept.completed, kept.approvals) == (3, 2)
    assert kept.approval_p50_minutes == pytest.approx(20.0, rel=0.02)
    # 5 tickets: 3 completed, the shadow one (its follow-up is no new ticket), the one still awaiting a decision
    assert (kept.tickets, kept.tokens_in, kept.tokens_out) == (5, 3 * 1000 + 500 + 7 + 300, 300)
    assert UsageWeek.objects.get(engine="e2").cache_read_tokens == 200

    rollups_rebuild()
    assert dashboard_get(weeks=2, now=now) == kept


def test_it_counts_nothing_of_a_change_that_rolled_back() -> None:
    run = _run(hours_open=1, phase="autonomous", tokens_in=50)
    with pytest.raises(RuntimeError), transaction.atomic():
        agent_run_transition(run=run, status="completed")
        assert UsageWeek.objects.get().tokens_in == 50  # counted in the same transaction...
        raise RuntimeError
    assert not UsageWeek.objects.exists() and not LatencyWeek.objects.exists()  # ...and gone with it


def test_it_takes_percentiles_from_the_histogram_within_half_a_bucket() -> None:
    generator = random.Random(15)
    values = [generator.lognormvariate(8, 2) for _ in range(2000)]
    buckets: dict[int, list[float]] = {}
    for value in values:
        buckets.setdefault(bucket_of(value), []).append(value)
    histogram = [(bucket, len(found), sum(found)) for bucket, found in buckets.items()]
    for fraction in (0.5, 0.9, 0.99):
        assert histogram_percentile(histogram, fraction) == pytest.approx(percentile(values, fraction), rel=0.022)
    assert histogram_percentile([], 0.5) is None
    assert histogram_percentile([(bucket_of(0.2), 1, 0.2)], 0.9) == 0.2  # under a second: its own bucket


def test_it_rebuilds_from_the_command() -> None:
    AgentRunFactory(status="completed", phase="autonomous", finished_at=timezone.now(), engine="e1")
    AgentRunFactory(status="completed", phase="autonomous", finished_at=timezone.now(), engine="e1")
    out = StringIO()
    call_command("dashboard_rebuild", stdout=out)
    assert out.getvalue().startswith("Rebuilt 1 usage rows and ")
    assert UsageWeek.objects.get().runs == 2
    assert LatencyWeek.objects.get(kind="resolution").count == 2
