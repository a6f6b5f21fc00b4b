"""The process counters the services feed: SLA breaches (once per proposal) and approval latency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from agent.models import ProposedAction
from agent.notifications import approval_sla_sweep
from agent.services.actions import proposed_action_reject
from tests.factories import ProposedActionFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_it_counts_an_sla_breach_once_per_proposal(broker, django_capture_on_commit_callbacks) -> None:
    workflow = WorkflowFactory(slug="sla-counted")
    ProposedActionFactory(
        run__workflow=workflow, run__status="awaiting_approval", sla_due_at=timezone.now() - timedelta(minutes=1)
    )
    before = _sample("agentconsole_approval_sla_breaches_total", workflow="sla-counted")
    with django_capture_on_commit_callbacks(execute=False):
        assert len(approval_sla_sweep()) == 1
        assert approval_sla_sweep() == []
    assert _sample("agentconsole_approval_sla_breaches_total", workflow="sla-counted") - before == 1


def test_it_observes_the_time_a_proposal_waited_for_its_decision(reviewer_user, broker) -> None:
    action = ProposedActionFactory(run__status="awaiting_approval", status="pending")
    ProposedAction.objects.filter(pk=action.pk).update(created_at=timezone.now() - timedelta(minutes=30))
    action.refresh_from_db()
    count = _sample("agentconsole_approval_latency_seconds_count", decision="rejected")
    total = _sample("agentconsole_approval_latency_seconds_sum", decision="rejected")
    proposed_action_reject(action=action, user=reviewer_user, reason="Not this tenant.")
    assert _sample("agentconsole_approval_latency_seconds_count", decision="rejected") - count == 1
    assert 1790 < _sample("agentconsole_approval_latency_seconds_sum", decision="rejected") - total < 1810
