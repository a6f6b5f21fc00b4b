"""One worker at a time advances a run: it claims a lease, renews it before each slow call, and releases it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from agent.lifecycle import RUN_CLAIMABLE
from agent.models import AgentRun, ProposedAction, Step, Workflow, WorkflowVersion
from agentconsole import rawsql
from tickets.models import TenantLink, Ticket, TicketComment

if TYPE_CHECKING:
    from agent.services.actions import Settlement


# The stored Zendesk event, which no part of a turn reads (deferred: a read would load it): it can be many times the
# rest of the row, and the claim of every model call would decode it.
_TICKET_UNREAD = ("raw_payload",)


@cache
def _claim_sql() -> str:
    run, ticket, link, workflow = (rawsql.table(m) for m in (AgentRun, Ticket, TenantLink, Workflow))
    step, action, comment = (rawsql.table(m) for m in (Step, ProposedAction, TicketComment))
    version = rawsql.table(WorkflowVersion)
    claimable = ", ".join(f"'{status}'" for status in sorted(RUN_CLAIMABLE))
    return (
        f"WITH c AS (UPDATE {run} SET lease_token = %s, lease_expires_at = %s "  # noqa: S608 - names from the models' meta
        f"WHERE id = %s AND status IN ({claimable}) AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
        f"RETURNING {rawsql.columns(AgentRun)}) "
        f"SELECT c.*, {rawsql.columns(Ticket, 't', _TICKET_UNREAD)}, {rawsql.columns(TenantLink, 'l')}, "
        f"{rawsql.columns(Workflow, 'w')}, "
        f"(SELECT json_agg(s.* ORDER BY s.index) FROM {step} s WHERE s.run_id = c.id), "
        f"(SELECT json_agg(a.* ORDER BY a.created_at, a.id) FROM {action} a WHERE a.run_id = c.id), "
        f"(SELECT json_agg(m.* ORDER BY m.created_at, m.id) FROM {comment} m WHERE m.ticket_id = c.ticket_id), "
        f"EXISTS (SELECT 1 FROM {run} e WHERE e.ticket_id = c.ticket_id AND e.created_at < c.created_at), "
        f"CASE WHEN c.version_id IS NULL THEN (SELECT json_agg(v.*) FROM (SELECT * FROM {version} "
        "WHERE workflow_id = c.workflow_id ORDER BY number DESC LIMIT 1) v) END "
        f"FROM c JOIN {ticket} t ON t.id = c.ticket_id LEFT JOIN {link} l ON l.id = t.tenant_link_id "
        f"LEFT JOIN {workflow} w ON w.id = c.workflow_id"
    )


def _claim_in_one(*, run_id: int, token: str, expires: datetime, now: datetime) -> AgentRun | None:
    """The claim, the run with its ticket, tenant link and workflow, its transcript, its calls, the ticket's
    comments, and whether the ticket had runs before it: one statement, what the advance reads before its turn."""
    from agent.prompts import earlier_runs_none, ticket_comments_hold
    from agent.services.transcript import actions_hold, transcript_hold
    from agent.versions import workflow_version_latest_hold

    rows = rawsql.execute(_claim_sql(), [token, expires, run_id, now])
    if not rows:
        return None
    row = rows[0]
    at = 0
    run = rawsql.load(AgentRun, row, at)
    at += rawsql.width(AgentRun)
    ticket = rawsql.load(Ticket, row, at, _TICKET_UNREAD)
    at += rawsql.width(Ticket, _TICKET_UNREAD)
    link = rawsql.load(TenantLink, row, at) if ticket.tenant_link_id is not None else None
    at += rawsql.width(TenantLink)
    workflow = rawsql.load(Workflow, row, at) if run.workflow_id is not None else None
    at += rawsql.width(Workflow)
    steps, actions, comments, had_earlier, latest = row[at : at + 5]
    Ticket._meta.get_field("tenant_link").set_cached_value(ticket, link)
    AgentRun._meta.get_field("ticket").set_cached_value(run, ticket)
    AgentRun._meta.get_field("workflow").set_cached_value(run, workflow)
    transcript_hold(run, rawsql.load_json(Step, steps))
    actions_hold(run, rawsql.load_json(ProposedAction, actions))
    ticket_comments_hold(ticket, rawsql.load_json(TicketComment, comments))
    if not had_earlier:
        earlier_runs_none(run)
    if workflow is not None and run.version_id is None:
        versions = rawsql.load_json(WorkflowVersion, latest)
        workflow_version_latest_hold(workflow, versions[0] if versions else None)
    return run


def agent_run_claim(*, run_id: int, lease_seconds: int) -> AgentRun | None:
    """Take the run for one advance. One conditional UPDATE: two workers can never both hold it, and a lease
    left by a crashed worker expires."""
    now = timezone.now()
    token = uuid.uuid4().hex
    if rawsql.postgresql():
        run = _claim_in_one(run_id=run_id, token=token, expires=now + timedelta(seconds=lease_seconds), now=now)
        if run is not None:
            run.__dict__[_FRESH] = True
        return run
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
    run = AgentRun.objects.select_related("ticket__tenant_link", "workflow").defer("ticket__raw_payload").get(pk=run_id)
    run.__dict__[_FRESH] = True  # the lease was just set: the first slow call needs no renewal before it
    return run


def agent_run_renew_lease(*, run_id: int, token: str, lease_seconds: int) -> bool:
    """Extend this worker's lease before the next slow call. False: the lease expired and another worker took the
    run, so this one must stop without touching it."""
    expires = rawsql.prep(AgentRun, "lease_expires_at", timezone.now() + timedelta(seconds=lease_seconds))
    return bool(rawsql.execute(RENEW_SQL, [expires, run_id, token]))


# Sent at the end of every task: written by hand, as building it with the ORM (an F() expression to resolve) cost
# several times sending it.
RELEASE_SQL = (
    "UPDATE \"agent_agentrun\" SET lease_token = '', lease_expires_at = NULL, active_ms = active_ms + %s "
    "WHERE id = %s AND lease_token = %s"
)


def agent_run_release(*, run_id: int, token: str, active_ms: int) -> None:
    rawsql.run(RELEASE_SQL, [active_ms, run_id, token])


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


RENEW_SQL = 'UPDATE "agent_agentrun" SET lease_expires_at = %s WHERE id = %s AND lease_token = %s RETURNING id'


def lease_renewal(run: AgentRun, *, slow_call_next: bool = True, always: bool = False) -> tuple[str, list[Any]] | None:
    """lease_hold's renewal as a statement for the caller to make part of its own (PostgreSQL: a WITH before the
    write it guards, which then changes nothing when the renewal found no lease): None when no renewal is due. Call
    lease_renewed with whether it renewed."""
    if run.__dict__.get(_FRESH) and not always:
        run.__dict__[_FRESH] = not slow_call_next
        return None
    expires = timezone.now() + timedelta(seconds=settings.AGENT_LEASE_SECONDS)
    run.__dict__[_PENDING] = not slow_call_next
    return RENEW_SQL, [expires, run.pk, run.lease_token]


def lease_renewed(run: AgentRun, renewed: bool) -> None:
    """After a statement that carried lease_renewal's renewal: LeaseLost when it found no lease."""
    if not renewed:
        raise LeaseLost
    run.__dict__[_FRESH] = run.__dict__.pop(_PENDING, False)


_PENDING = "_lease_fresh_after"


@dataclass(eq=False)
class Advance:
    """One advance of a run by this worker (run_advance): what it holds while it works on the run, created when it
    claimed the run, passed to the services that need it, and gone with the advance (never stored on the run).

    - `lease`: the lease token it claimed. Every status change the advance makes, and every proposal, is conditional
      on it: a worker whose lease another took (it expired and another worker claimed the run, or a reviewer took
      the run over) changes nothing (LeaseLost).
    - `started`: when it began (time.monotonic()). A status change that stops the run (it ends, or waits for
      reviewers) releases the lease in its own UPDATE (lease_release_sets), counting the time since.
    - `released`: that release committed; the advance has nothing left to release.
    - `final_engine`: the engine of a final turn (text alone) held for the statement that ends the run.
    - `settlement`: a call's settlement held for the statement that writes its observation.

    Services called outside an advance (a reviewer, an admin, the reconciler, a task escalating a failed run) get
    none: their changes hold no lease of an advance."""

    lease: str
    started: float = field(default_factory=time.monotonic)
    released: bool = False
    final_engine: str | None = None
    settlement: Settlement | None = None


def lease_check_locked(locked: AgentRun, advance: Advance | None) -> None:
    """On the run's locked row (`locked`): LeaseLost when the advance no longer holds the run's lease."""
    if advance is not None and locked.lease_token != advance.lease:
        raise LeaseLost


def lease_release_sets(advance: Advance | None) -> tuple[list[str], list[Any]] | None:
    """The SET clauses (and parameters) that release this worker's lease with the status change that stops the run,
    counting the advance's time: only where the lease is still this worker's (CASE), so a run taken over meanwhile
    keeps its new holder. None outside an advance, or once released. Call lease_release_noted after."""
    if advance is None or advance.released:
        return None
    mine = "lease_token = %s"
    active_ms = int((time.monotonic() - advance.started) * 1000)
    sets = [
        f"lease_expires_at = CASE WHEN {mine} THEN NULL ELSE lease_expires_at END",
        f"active_ms = active_ms + CASE WHEN {mine} THEN %s ELSE 0 END",
        f"lease_token = CASE WHEN {mine} THEN '' ELSE lease_token END",
    ]
    return sets, [advance.lease, advance.lease, active_ms, advance.lease]


def lease_release_noted(advance: Advance) -> None:
    """The lease went with the status change: once that commits, the advance releases nothing more."""
    transaction.on_commit(lambda: setattr(advance, "released", True))
