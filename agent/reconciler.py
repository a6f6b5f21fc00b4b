"""Self-healing runs: the periodic sweep that restarts runs nothing is working on.

A run advances by task messages, one per turn. Whatever goes wrong between two turns — the broker was down when
the message was sent, a worker was killed after taking a message off the queue but before recording it, a worker
died mid-turn, the database went away under the task's error handler — ends the same way: a run that is neither
final nor held by a live worker, and that no recent dispatch is about to pick up. The sweep finds exactly those
and dispatches them again (a new token, so any late copy of the old message is a no-op). A run that needed
AGENT_RUN_MAX_RECOVERIES restarts keeps failing for a reason a restart will not fix: it goes to humans.

Celery beat sends agent_runs_reconcile_task every AGENT_RECONCILE_INTERVAL_SECONDS; see the README.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from agent.lifecycle import RUN_FINAL, RUN_WORKING
from agent.models import AgentRun, ProposedAction
from agent.services.leases import agent_run_claim, agent_run_release
from agent.services.runs import agent_run_escalate, agent_run_publish
from audit.models import AuditEvent
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

RECOVERIES_EXHAUSTED = (
    "The run was interrupted {count} times (worker crashes or outages) and did not finish; handed to humans."
)


@dataclass
class ReconcileResult:
    recovered: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


def agent_runs_stranded(*, now: object = None, stale_seconds: int | None = None) -> QuerySet[AgentRun]:
    """Runs no worker is working on and no recent dispatch will pick up.

    - a lease that expired: the worker holding it died (or lost the database) mid-turn;
    - queued or running, no lease, and the last dispatch is older than AGENT_RUN_STALE_SECONDS: its message was
      never sent (broker down) or was lost with a killed worker;
    - awaiting approval with nothing left to decide, and no recent dispatch: the resume message was lost.
    Runs started by hand (`agent_run_ticket`) are the operator's, and never restarted here.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds if stale_seconds is not None else settings.AGENT_RUN_STALE_SECONDS)
    dispatch_stale = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=cutoff)
    pending = ProposedAction.objects.filter(run=OuterRef("pk"), status=ProposedAction.Status.PENDING)
    expired_lease = Q(lease_expires_at__lt=now) & (dispatch_stale | Q(dispatched_at__lt=F("lease_expires_at")))
    idle = (
        Q(lease_expires_at__isnull=True)
        & dispatch_stale
        & (Q(status__in=RUN_WORKING) | Q(status=AgentRun.Status.AWAITING_APPROVAL, has_pending=False))
    )
    return (
        AgentRun.objects.exclude(status__in=RUN_FINAL)
        .exclude(trigger=AgentRun.Trigger.MANUAL)
        .annotate(has_pending=Exists(pending))
        .filter(expired_lease | idle)
        .order_by("dispatched_at", "id")
    )


def agent_run_recover(*, run: AgentRun) -> str | None:
    """Dispatch a stranded run again, counted and audited. None when someone else got to it first (another
    sweep, a worker that took it, a reviewer's decision): the conditional UPDATE only matches the state we saw."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        updated = (
            AgentRun.objects.filter(
                pk=run.pk,
                status=run.status,
                dispatch_token=run.dispatch_token,
                lease_expires_at=run.lease_expires_at,
            )
            .exclude(status__in=RUN_FINAL)
            .update(dispatch_token=token, dispatched_at=timezone.now(), recoveries=models.F("recoveries") + 1)
        )
        if not updated:
            return None
        audit_event_record(
            verb="run.recovered",
            obj=run,
            payload={
                "status": run.status,
                "recovery": run.recoveries + 1,
                "lease_expired": run.lease_expires_at is not None,
                "last_dispatch": run.dispatched_at.isoformat() if run.dispatched_at else None,
            },
            actor_kind=AuditEvent.ActorKind.SYSTEM,
        )
        transaction.on_commit(lambda: agent_run_publish(run_id=run.pk, token=token), robust=True)
    return token


def agent_run_give_up(*, run: AgentRun) -> bool:
    """Escalate a run that keeps failing. Takes the lease first so no worker is in it meanwhile."""
    claimed = agent_run_claim(run_id=run.pk, lease_seconds=settings.AGENT_LEASE_SECONDS)
    if claimed is None:
        return False
    try:
        if claimed.status not in RUN_FINAL:
            agent_run_escalate(run=claimed, reason=RECOVERIES_EXHAUSTED.format(count=claimed.recoveries))
    finally:
        agent_run_release(run_id=run.pk, token=claimed.lease_token, active_ms=0)
    return True


def agent_runs_reconcile(*, limit: int = 500) -> ReconcileResult:
    """One sweep: restart every stranded run, and hand to humans the ones restarted too often already."""
    result = ReconcileResult()
    for run in agent_runs_stranded()[:limit]:
        if run.recoveries >= settings.AGENT_RUN_MAX_RECOVERIES:
            if agent_run_give_up(run=run):
                result.escalated.append(run.pk)
        elif agent_run_recover(run=run) is not None:
            result.recovered.append(run.pk)
    if result.recovered or result.escalated:
        logger.warning("reconciler: restarted runs %s, escalated runs %s", result.recovered, result.escalated)
    return result
