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
    run = AgentRun.objects.select_related("ticket__tenant_link", "workflow").get(pk=run_id)
    run.__dict__[_FRESH] = True  # the lease was just set: the first slow call needs no renewal before it
    return run


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


# Set on a loaded run while no slow call has run since its lease was set or renewed.
_FRESH = "_lease_fresh"


def lease_hold(run: AgentRun, *, slow_call_next: bool = True, always: bool = False) -> None:
    """Renew this worker's lease before a slow call (or after one, `slow_call_next=False`, before writing what it
    returned); raise LeaseLost when another worker took the run. At most one renewal per slow call: when nothing
    slow ran since the lease was set or renewed, it still has its full time and this is a no-op, unless `always`
    (before a call that changes something outside, where a take-over must be seen however recent)."""
    if run.__dict__.get(_FRESH) and not always:
        run.__dict__[_FRESH] = not slow_call_next
        return
    if not agent_run_renew_lease(run_id=run.pk, token=run.lease_token, lease_seconds=settings.AGENT_LEASE_SECONDS):
        raise LeaseLost
    run.__dict__[_FRESH] = not slow_call_next
