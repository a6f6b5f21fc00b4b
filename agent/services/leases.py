"""One worker at a time advances a run: it claims a lease, renews it before each slow call, and releases it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from agent.lifecycle import RUN_CLAIMABLE
from agent.models import AgentRun


def agent_run_claim(*, run_id: int, lease_seconds: int) -> AgentRun | None:
    """Take the run for one advance. One conditional UPDATE: two workers can never both hold it, and a lease
    left by a crashed worker expires."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        AgentRun.objects.filter(
            pk=run_id,
            status__in=RUN_CLAIMABLE,
        )
        .filter(models.Q(lease_expires_at__isnull=True) | models.Q(lease_expires_at__lt=now))
        .update(lease_token=token, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    if not claimed:
        return None
    return AgentRun.objects.select_related("ticket__tenant_link", "workflow").get(pk=run_id)


def agent_run_renew_lease(*, run_id: int, token: str, lease_seconds: int) -> bool:
    """Extend this worker's lease before the next slow call. False: the lease expired and another worker took the
    run, so this one must stop without touching it."""
    return bool(
        AgentRun.objects.filter(pk=run_id, lease_token=token).update(
            lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds)
        )
    )


def agent_run_release(*, run_id: int, token: str, active_ms: int) -> None:
    AgentRun.objects.filter(pk=run_id, lease_token=token).update(
        lease_token="", lease_expires_at=None, active_ms=models.F("active_ms") + active_ms
    )


class LeaseLost(Exception):
    """Another worker took the run while this one waited on a slow call: stop here, change nothing more."""


def lease_hold(run: AgentRun) -> None:
    """Renew this worker's lease before a slow call; raise LeaseLost when another worker took the run."""
    if not agent_run_renew_lease(run_id=run.pk, token=run.lease_token, lease_seconds=settings.AGENT_LEASE_SECONDS):
        raise LeaseLost
