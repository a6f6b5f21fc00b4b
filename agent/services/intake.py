"""Runs start here: a new ticket, a customer's comment on a ticket whose run ended, or by hand.

A Zendesk delivery takes two steps: the webhook stores the event and sends a task message (zendesk_event_accept),
and a worker applies it and starts its run (zendesk_event_process); the sweep sends again what went missing."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agent.enqueue import event_process_send
from agent.lifecycle import RUN_CLOSABLE, RUN_FINAL
from agent.models import AgentRun, Workflow
from agent.selectors import WorkflowChoice, workflow_choice
from agent.services.runs import agent_run_dispatch_prepare, agent_run_publish_on_commit
from agentconsole.errors import ApplicationError
from agentconsole.rows import row_insert_unless_taken
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.helpdesk import ticket_refresh_when_changed
from tickets.models import Ticket, TicketComment, WebhookEvent
from tickets.services.webhooks import IngestResult, webhook_event_store, zendesk_event_apply, zendesk_event_refuse
from tickets.zendesk_webhook import ParsedEvent, parse_event_data

logger = logging.getLogger(__name__)


def _run_queue(
    *,
    ticket: Ticket,
    choice: WorkflowChoice,
    phase: str,
    trigger: str,
    actor_kind: str,
    payload: dict[str, Any],
    trigger_comment: TicketComment | None = None,
) -> AgentRun | None:
    """Insert a run that starts on its own and dispatch it: one INSERT that carries its dispatch (the outbox; the
    message is sent once the transaction commits, or by the reconciler if the broker is down then), and its
    `run.queued` audit entry. None, and nothing written, when a unique constraint says the run exists already (one
    automatic run per new ticket, one follow-up per comment), even one another delivery is inserting right now."""
    run = AgentRun(
        ticket=ticket,
        workflow=choice.workflow,
        phase=phase,
        matched_on=choice.matched_on,
        trigger=trigger,
        trigger_comment=trigger_comment,
    )
    token = agent_run_dispatch_prepare(run)
    if not row_insert_unless_taken(run):
        return None
    audit_event_record(
        verb="run.queued",
        obj=run,
        payload={
            "ticket": ticket.pk,
            "workflow": choice.workflow.slug if choice.workflow else None,
            "phase": phase,
            **payload,
            "matched_on": choice.matched_on,
        },
        actor_kind=actor_kind,
    )
    agent_run_publish_on_commit(run=run, token=token, new=True)
    return run


def agent_run_create_for_new_ticket(*, ticket: Ticket) -> AgentRun | None:
    """Create the one automatic run of a new ticket and dispatch it (the message is sent once the transaction
    commits; if the broker is down then, the reconciler sends it later).

    Returns None when the ticket already has its automatic run (the partial unique constraint decides, so two
    concurrent deliveries cannot both create one).
    """
    choice = workflow_choice(ticket=ticket)
    return _run_queue(
        ticket=ticket,
        choice=choice,
        phase=choice.phase,
        trigger=AgentRun.Trigger.TICKET_CREATED,
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        payload={},
    )


def agent_run_on_customer_comment(*, ticket: Ticket, comment: TicketComment) -> AgentRun | None:
    """A customer wrote on the ticket. A run still working (queued, running, waiting for a reviewer) reads the
    comment on its next turn and shows it to the reviewer: nothing to start. A ticket whose runs have all ended
    gets one follow-up run, which sees every earlier run's findings and replies — unless a reviewer took it over
    and has not closed it; after an escalation, or on a ticket a reviewer holds, the follow-up acts at most in
    triage. Returns the follow-up, if any.

    Called inside the webhook's transaction with the ticket row locked, so two comments arriving at once cannot
    both start a run; the unique trigger comment makes one follow-up per comment, however often it is delivered.
    """
    runs = AgentRun.objects.filter(ticket=ticket).order_by("-created_at", "-id")
    latest = runs.first()
    if latest is None:
        return None  # the ticket's first run (ticket.created) has not been created yet; it will read the comment
    active = runs.exclude(status__in=RUN_FINAL).first()
    if active is not None:
        audit_event_record(
            verb="run.comment_joined",
            obj=active,
            payload={"comment": comment.pk, "status": active.status},
            actor_kind=AuditEvent.ActorKind.WEBHOOK,
        )
        return None
    if latest.status == AgentRun.Status.TAKEN_OVER and not latest.outcome:
        # A reviewer stopped the agent and works the ticket: the comment is theirs to answer.
        audit_event_record(
            verb="run.follow_up_skipped",
            obj=latest,
            payload={"comment": comment.pk, "why": "a reviewer took the ticket over"},
            actor_kind=AuditEvent.ActorKind.WEBHOOK,
        )
        return None
    choice = workflow_choice(ticket=ticket)  # a workflow the customer's words alone chose runs at most in triage
    phase = choice.phase
    people_have_it = latest.status in RUN_CLOSABLE or ticket.assignee_id
    if people_have_it and phase == Workflow.Phase.AUTONOMOUS:
        phase = Workflow.Phase.TRIAGE  # people have the ticket now: the agent gathers context, it does not act alone
    return _run_queue(
        ticket=ticket,
        choice=choice,
        phase=phase,
        trigger=AgentRun.Trigger.CUSTOMER_COMMENT,
        trigger_comment=comment,
        actor_kind=AuditEvent.ActorKind.WEBHOOK,
        payload={"follow_up_of": latest.pk, "comment": comment.pk},
    )


def agent_run_create_manual(*, ticket: Ticket) -> AgentRun:
    """A run started by hand (debugging, re-runs); it is not enqueued."""
    choice = workflow_choice(ticket=ticket)
    run = AgentRun.objects.create(
        ticket=ticket,
        workflow=choice.workflow,
        phase=choice.phase,
        matched_on=choice.matched_on,
        trigger=AgentRun.Trigger.MANUAL,
    )
    audit_event_record(
        verb="run.queued", obj=run, payload={"ticket": ticket.pk, "manual": True, "matched_on": choice.matched_on}
    )
    return run


@dataclass(frozen=True)
class Accepted:
    """What the webhook answers: the event's id, and whether it was a redelivery of an event stored before."""

    event_id: str
    duplicate: bool
    event_pk: int | None = None


def zendesk_event_accept(*, parsed: ParsedEvent, body: bytes | None = None) -> Accepted:
    """The webhook's whole work once the event is verified and parsed: store it (one INSERT, a redelivery stores
    nothing) and send the task message that applies it (zendesk_event_process). Nothing else happens in the request.
    `body`, the JSON text the event was parsed from by parse_event (whose limits refuse whatever jsonb would), is
    stored as it came rather than serialised again from the parsed event.

    Outside a transaction the INSERT has committed when the message goes out; inside one (a caller's), the message
    waits for the commit. If the broker is down, or the process dies between the INSERT and the message, the event
    stays unprocessed and the sweep (zendesk_events_redispatch) sends it again."""
    event_pk = webhook_event_store(
        source=Ticket.Source.ZENDESK,
        event_id=parsed.envelope.id,
        event_type=parsed.envelope.type,
        body=body.decode() if body is not None else json.dumps(parsed.raw),
    )
    if event_pk is not None:
        transaction.on_commit(lambda: _send(event_pk), robust=True)
    return Accepted(event_id=parsed.envelope.id, duplicate=event_pk is None, event_pk=event_pk)


def _send(event_pk: int) -> None:
    try:
        event_process_send(event_pk)
    except Exception:  # any broker failure: the stored, unprocessed event is what makes this safe to swallow
        logger.warning("webhook event %s: could not enqueue it; the sweep will", event_pk, exc_info=True)


@transaction.atomic
def zendesk_event_process(*, event_pk: int) -> IngestResult | None:
    """Apply a stored Zendesk event (what the webhook's task message asks): tickets applies it to its ticket; the
    agent then starts the run it calls for (a new ticket, or a customer's comment on a ticket whose runs have ended
    — a comment on a run still in progress joins its context). One transaction, holding the event's row lock: a
    second message for the same event (a redelivery, the sweep's) waits, then finds it processed and does nothing.
    None when the event was processed already (or is gone)."""
    event = WebhookEvent.objects.select_for_update().filter(pk=event_pk, processed_at__isnull=True).first()
    if event is None:
        return None
    try:
        parsed = parse_event_data(event.payload)
    except ApplicationError as exc:
        return zendesk_event_refuse(event=event, reason=exc.message)
    try:
        with transaction.atomic():
            result = zendesk_event_apply(event=event, parsed=parsed)
            if result.ticket is None or not result.handled:
                return result
            run = None
            if result.customer_comment is not None:
                run = agent_run_on_customer_comment(ticket=result.ticket, comment=result.customer_comment)
            if result.ticket_created:
                run = agent_run_create_for_new_ticket(ticket=result.ticket)
            ticket_refresh_when_changed(ticket=result.ticket, new_run=run is not None)
    except DjangoValidationError as exc:
        # The webhook's parser should leave nothing for the models to refuse; if they ever do, the event is the
        # sender's input and will not apply on any retry: kept, marked, nothing of it half-applied.
        return zendesk_event_refuse(event=event, reason=" ".join(exc.messages))
    return replace(result, run_id=run.pk if run else None)


def zendesk_event_receive(*, parsed: ParsedEvent) -> IngestResult | None:
    """Store an event and apply it now, in this process, with no task message (the demo's seed: the same path as a
    delivery, without a worker). None for an event stored before."""
    event_pk = webhook_event_store(
        source=Ticket.Source.ZENDESK,
        event_id=parsed.envelope.id,
        event_type=parsed.envelope.type,
        body=json.dumps(parsed.raw),
    )
    return None if event_pk is None else zendesk_event_process(event_pk=event_pk)


REDISPATCH_BACKOFF_DOUBLINGS = 6  # the sweep's wait doubles after each try, up to 64 x WEBHOOK_EVENT_STALE_SECONDS
REDISPATCH_LOUD_AFTER = 3  # tries after which an event that is still not applied is logged as an error


def zendesk_events_redispatch(
    *, now: datetime | None = None, stale_seconds: int | None = None, limit: int = 500
) -> list[int]:
    """The sweep (celery beat): send again the task message of every event stored but not processed within
    WEBHOOK_EVENT_STALE_SECONDS — the broker was down when the webhook sent it, the web process died between the
    INSERT and the message, or a worker lost it. Each try moves the event's next one in one UPDATE, so two sweeps
    never send the same event twice; a message that was only slow is applied once anyway.

    An event whose processing keeps failing (a bug, a helpdesk down for hours) is never dropped: the wait before
    its next try doubles each time (60 s, 120 s, … up to 64 x the stale time), and from the third try on it is
    logged as an error; agentconsole_webhook_event_oldest_unprocessed_age_seconds shows it too."""
    now = now or timezone.now()
    stale = stale_seconds if stale_seconds is not None else settings.WEBHOOK_EVENT_STALE_SECONDS
    cutoff = now - timedelta(seconds=stale)
    due = Q(redispatch_after__isnull=True) | Q(redispatch_after__lte=now)
    candidates = (
        WebhookEvent.objects.filter(due, processed_at__isnull=True, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", "redispatches")[:limit]
    )
    sent = []
    for event_pk, tries in candidates:
        wait = timedelta(seconds=stale * 2 ** min(tries, REDISPATCH_BACKOFF_DOUBLINGS))
        claimed = WebhookEvent.objects.filter(due, pk=event_pk, processed_at__isnull=True, redispatches=tries).update(
            dispatched_at=now, redispatches=tries + 1, redispatch_after=now + wait
        )
        if claimed:
            _send(event_pk)
            sent.append(event_pk)
            if tries + 1 >= REDISPATCH_LOUD_AFTER:
                logger.error(
                    "webhook event %s sent %s times and still not applied; next try in %ss (see its task's errors)",
                    event_pk,
                    tries + 1,
                    int(wait.total_seconds()),
                )
    if sent:
        logger.warning("webhook events sent again (unprocessed after %ss): %s", stale, sent)
    return sent
