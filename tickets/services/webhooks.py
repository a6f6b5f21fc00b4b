"""A verified helpdesk event: stored once by the webhook, then applied to its ticket and comments by a worker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from agentconsole.rows import row_insert_unless_taken
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import Ticket, TicketComment, WebhookEvent
from tickets.services.comments import comment_ours, helpdesk_author_is_us, ticket_comment_add, ticket_comment_confirm
from tickets.services.sync import tenant_link_for
from tickets.services.tickets import ticket_set_status
from tickets.snapshot import marker_in, without_marker
from tickets.zendesk_webhook import EVENT_COMMENT_ADDED, EVENT_TICKET_CREATED, Comment, ParsedEvent, TicketDetail

EVENT_ON_CLOSED_TICKET = "The ticket is closed; closed tickets do not change, so the event was stored and ignored."


@dataclass(frozen=True)
class IngestResult:
    event_pk: int
    ticket_id: int | None
    handled: bool
    run_id: int | None = None
    ignored_reason: str = ""
    # What may start a run, for the agent to decide (agent.services.intake.zendesk_event_process).
    ticket: Ticket | None = None
    ticket_created: bool = False
    customer_comment: TicketComment | None = None


def _apply_detail(ticket: Ticket, detail: TicketDetail) -> list[str]:
    """Copy the fields Zendesk sent onto the ticket; return the names that changed."""
    changed: list[str] = []
    sent = detail.model_fields_set
    for field in ("subject", "description", "requester_id", "organization_id", "group_id", "tags"):
        value = getattr(detail, field)
        if field in sent and value is not None and getattr(ticket, field) != value:
            setattr(ticket, field, value)
            changed.append(field)
    if "priority" in sent and ticket.priority != (detail.priority or ""):
        ticket.priority = detail.priority or ""
        changed.append("priority")
    if "organization_id" in changed:
        ticket.tenant_link = tenant_link_for(ticket.organization_id)
        changed.append("tenant_link")
    if detail.created_at and ticket.external_created_at is None:
        ticket.external_created_at = detail.created_at
        changed.append("external_created_at")
    return changed


def _ticket_insert(*, parsed: ParsedEvent) -> Ticket | None:
    """The ticket the event's snapshot describes, inserted whole in one statement; None when it exists already."""
    detail = parsed.ticket
    assert detail is not None
    ticket = Ticket(
        source=Ticket.Source.ZENDESK,
        external_id=detail.id,
        subject=(detail.subject or "")[:500],
        raw_payload=parsed.raw,
    )
    changed = _apply_detail(ticket, detail)
    if detail.updated_at:
        ticket.external_updated_at = detail.updated_at
    # The tenant link was just read, and the database enforces uniqueness (the insert yields to an existing row).
    ticket.full_clean(exclude=["tenant_link"], validate_unique=False, validate_constraints=False)
    if not row_insert_unless_taken(ticket):
        return None
    _ticket_settle(ticket, parsed, changed, created=True)
    return ticket


def _ticket_settle(ticket: Ticket, parsed: ParsedEvent, changed: list[str], *, created: bool) -> Ticket:
    """The status the snapshot gives (audited as a status change) and the audit entry of the create or sync."""
    detail = parsed.ticket
    assert detail is not None
    if detail.status and detail.status != ticket.status:
        ticket = ticket_set_status(ticket=ticket, status=detail.status, actor_kind=AuditEvent.ActorKind.WEBHOOK)
    if created or changed:
        audit_event_record(
            verb="ticket.created" if created else "ticket.synced",
            obj=ticket,
            payload={"event_id": parsed.envelope.id, "fields": sorted(changed)},
            actor_kind=AuditEvent.ActorKind.WEBHOOK,
        )
    return ticket


def _ticket_upsert(*, parsed: ParsedEvent) -> tuple[Ticket, bool]:
    """Create or update the ticket from the event's snapshot. True second: the ticket is closed, nothing applied."""
    detail = parsed.ticket
    assert detail is not None
    if (
        parsed.envelope.type == EVENT_TICKET_CREATED
        or not Ticket.objects.filter(source=Ticket.Source.ZENDESK, external_id=detail.id).exists()
    ):
        inserted = _ticket_insert(parsed=parsed)
        if inserted is not None:
            return inserted, False
    ticket = Ticket.objects.select_for_update().get(source=Ticket.Source.ZENDESK, external_id=detail.id)
    if ticket.status == Ticket.Status.CLOSED:
        return ticket, True
    # Deliveries can arrive out of order: an older snapshot never overwrites a newer one.
    if detail.updated_at and ticket.external_updated_at and detail.updated_at < ticket.external_updated_at:
        return ticket, False
    changed = _apply_detail(ticket, detail)
    if detail.updated_at:
        ticket.external_updated_at = detail.updated_at
    ticket.raw_payload = parsed.raw
    # The row is locked and the tenant link just read: the database enforces the rest.
    ticket.full_clean(exclude=["tenant_link"], validate_unique=False, validate_constraints=False)
    ticket.save()
    return _ticket_settle(ticket, parsed, changed, created=False), False


def _comment_ingest(ticket: Ticket, comment: Comment) -> TicketComment | None:
    """Store a comment the webhook brought, once. Our own comment coming back is recognised (marker, staff author)
    and confirmed instead of stored as a human's. Returns the new comment, or None when there was nothing new."""
    ours = comment_ours(ticket, comment.body, staff=comment.author.is_staff)
    if ours is not None:
        ticket_comment_confirm(comment=ours, external_id=comment.id, author_id=comment.author.id)
        return None
    if ticket.comments.filter(external_id=comment.id).exists():
        return None
    mine = bool(marker_in(comment.body)) and comment.author.is_staff and helpdesk_author_is_us(comment.author.id)
    if mine:
        kind = TicketComment.AuthorKind.AGENT
    elif comment.author.is_staff:
        kind = TicketComment.AuthorKind.HUMAN
    else:
        kind = TicketComment.AuthorKind.CUSTOMER
    return ticket_comment_add(
        ticket=ticket,
        body=without_marker(comment.body) if mine else comment.body,
        public=comment.is_public,
        author_kind=kind,
        author_id=comment.author.id,
        external_id=comment.id,
    )


def webhook_event_store(*, source: str, event_id: str, event_type: str, body: str) -> int | None:
    """Store a verified, parsed delivery as it came: one INSERT ... ON CONFLICT DO NOTHING of the raw body (the
    database parses it into jsonb). The id of the new row, or None for a redelivery: the unique (source, event_id)
    constraint decides, and an insert of the same event still in flight elsewhere is waited for.

    No transaction of its own: outside one the statement commits by itself, so the caller may send the event's task
    message as soon as this returns. Nothing else is read or written; a worker applies the event
    (zendesk_event_apply)."""
    if connection.vendor != "postgresql":
        # The embedded database (the demo's SQLite) has no jsonb to parse the body into: the portable insert.
        event = WebhookEvent(source=source, event_id=event_id, event_type=event_type, payload=json.loads(body))
        return event.pk if row_insert_unless_taken(event) else None
    params = [source, event_id, event_type, body]
    if connection.in_atomic_block:
        return _store(params)
    # With CONN_HEALTH_CHECKS Django checks a kept connection with a SELECT 1 before a request's first statement: a
    # round trip as dear as this INSERT, which is its own check instead. It may be sent twice (ON CONFLICT DO
    # NOTHING), so on a connection found dead it is sent once more on a new one. Had the first one committed before
    # the connection died, the second finds the event and says "stored before": no message is sent for it then,
    # and the sweep sends it (zendesk_events_redispatch) — late, never twice.
    kept = connection.connection is not None
    connection.health_check_done = True
    try:
        return _store(params)
    except (OperationalError, InterfaceError):
        raw = connection.connection
        if not kept or (raw is not None and not raw.closed and not raw.broken):
            raise  # a new connection that failed, or a statement that failed on a live one: nothing to retry
        connection.close()
        return _store(params)


def _store(params: list[str]) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(_STORE_SQL, params)
        row = cursor.fetchone()
    return row[0] if row else None


_STORE_SQL = (
    f"INSERT INTO {WebhookEvent._meta.db_table} "  # noqa: S608 - the model's own table name
    "(source, event_id, event_type, payload, handled, ignored_reason, received_at) "
    "VALUES (%s, %s, %s, %s::jsonb, false, '', now()) ON CONFLICT DO NOTHING RETURNING id"
)


@transaction.atomic(savepoint=False)  # inside the caller's transaction when there is one: no savepoint to pay for
def zendesk_event_apply(*, event: WebhookEvent, parsed: ParsedEvent) -> IngestResult:
    """Apply a stored Zendesk event to its ticket and comments, and mark it processed. Whether a run starts is the
    agent's to decide: the result names the new ticket or the customer's new public comment, and the caller
    (agent.services.intake.zendesk_event_process) runs in this same transaction, holding the event's row lock, so
    an event is applied once however many of its messages are delivered."""
    envelope = parsed.envelope
    if not parsed.is_ticket_event:
        return _settled(event, None, handled=False)
    ticket, closed = _ticket_upsert(parsed=parsed)
    if closed:
        # Zendesk never changes a closed ticket (a reply makes a follow-up ticket): a late or replayed event for
        # one is kept for the record and changes nothing. Answering an error would only make the sender retry.
        return _settled(event, ticket, ignored_reason=EVENT_ON_CLOSED_TICKET)
    customer_comment = None
    if envelope.type == EVENT_COMMENT_ADDED and parsed.comment is not None:
        stored_comment = _comment_ingest(ticket, parsed.comment)
        if (
            stored_comment is not None
            and stored_comment.public
            and stored_comment.author_kind == TicketComment.AuthorKind.CUSTOMER
        ):
            customer_comment = stored_comment
    return _settled(
        event,
        ticket,
        ticket_created=envelope.type == EVENT_TICKET_CREATED,
        customer_comment=customer_comment,
    )


def zendesk_event_refuse(*, event: WebhookEvent, reason: str) -> IngestResult:
    """Mark a stored event processed without applying it: what it says cannot be stored (the webhook's parser
    should leave nothing for the models to refuse; an event stored by an older version might). Kept for the record
    with the reason; sending it again would only fail again."""
    return _settled(event, None, handled=False, ignored_reason=reason[:200])


def _settled(
    stored: WebhookEvent, ticket: Ticket | None, *, ignored_reason: str = "", handled: bool = True, **found: Any
) -> IngestResult:
    """Record what an event did to its ticket: it was handled, or kept for the record with the reason it changed
    nothing; either way it is processed. A handled event carries its ticket and `found`, what may start a run
    (IngestResult's last fields)."""
    stored.ticket = ticket
    stored.handled = handled and not ignored_reason
    stored.ignored_reason = ignored_reason
    stored.processed_at = timezone.now()
    stored.save(update_fields=["ticket", "handled", "ignored_reason", "processed_at"])
    return IngestResult(
        event_pk=stored.pk,
        ticket_id=ticket.pk if ticket else None,
        handled=stored.handled,
        ignored_reason=ignored_reason,
        ticket=ticket if stored.handled else None,
        **found,
    )
