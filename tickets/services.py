"""Every write to tickets and their comments goes through here."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from agentconsole.errors import ConflictError, InvalidTransition
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import TenantLink, Ticket, TicketComment, WebhookEvent
from tickets.zendesk_webhook import EVENT_COMMENT_ADDED, EVENT_TICKET_CREATED, ParsedEvent, TicketDetail

TICKET_CLOSED = "A closed ticket cannot change status."
CLAIMED_BY_ANOTHER = "{name} has already claimed this ticket."
NOT_YOUR_CLAIM = "Only {name} can release this claim; take it instead."


@dataclass(frozen=True)
class IngestResult:
    event_pk: int
    ticket_id: int | None
    duplicate: bool
    handled: bool
    run_id: int | None


def _tenant_link_for(organization_id: str) -> TenantLink | None:
    if not organization_id:
        return None
    return TenantLink.objects.filter(organization_id=organization_id).first()


@transaction.atomic
def ticket_set_status(
    *, ticket: Ticket, status: str, user: AbstractBaseUser | None = None, actor_kind: str | None = None
) -> Ticket:
    """Change a ticket's status, audited. Closed is final, as in Zendesk."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if ticket.status == status:
        return ticket
    if ticket.status == Ticket.Status.CLOSED:
        raise InvalidTransition(TICKET_CLOSED)
    previous = ticket.status
    ticket.status = status
    ticket.solved_at = timezone.now() if status == Ticket.Status.SOLVED else ticket.solved_at
    ticket.full_clean()
    ticket.save(update_fields=["status", "solved_at", "updated_at"])
    audit_event_record(
        verb="ticket.status_changed",
        obj=ticket,
        payload={"from": previous, "to": status},
        user=user,
        actor_kind=actor_kind,
    )
    return ticket


@transaction.atomic
def ticket_assign(
    *, ticket: Ticket, assignee: AbstractBaseUser | None, user: AbstractBaseUser, force: bool = False
) -> Ticket:
    """Claim a ticket for a reviewer (or release it with assignee=None), audited. A ticket someone else holds is
    taken only with force=True, on purpose, so two reviewers never both believe they hold it."""
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("assignee").get(pk=ticket.pk)
    previous = ticket.assignee
    if previous is not None and assignee is not None and previous.pk != assignee.pk and not force:
        raise ConflictError(CLAIMED_BY_ANOTHER.format(name=previous.get_username()))
    if previous is not None and assignee is None and previous.pk != user.pk and not force:
        raise ConflictError(NOT_YOUR_CLAIM.format(name=previous.get_username()))
    if (previous.pk if previous else None) == (assignee.pk if assignee else None):
        return ticket
    ticket.assignee = assignee
    ticket.assigned_at = timezone.now() if assignee is not None else None
    ticket.save(update_fields=["assignee", "assigned_at", "updated_at"])
    audit_event_record(
        verb="ticket.assigned" if assignee is not None else "ticket.released",
        obj=ticket,
        payload={
            "from": previous.get_username() if previous else None,
            "to": assignee.get_username() if assignee else None,
            "taken": bool(previous and assignee and force),
        },
        user=user,
    )
    return ticket


@transaction.atomic
def ticket_set_group(*, ticket: Ticket, group_id: str, actor_kind: str | None = None) -> Ticket:
    """Route a ticket to a group (an engineering pod)."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    previous = ticket.group_id
    ticket.group_id = group_id
    ticket.full_clean()
    ticket.save(update_fields=["group_id", "updated_at"])
    audit_event_record(
        verb="ticket.routed", obj=ticket, payload={"from": previous, "to": group_id}, actor_kind=actor_kind
    )
    return ticket


@transaction.atomic
def ticket_add_tags(*, ticket: Ticket, tags: list[str]) -> Ticket:
    """Add tags, keeping the ones already there (never a replace)."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    ticket.tags = [*ticket.tags, *(tag for tag in dict.fromkeys(tags) if tag not in ticket.tags)]
    ticket.full_clean()
    ticket.save(update_fields=["tags", "updated_at"])
    return ticket


def ticket_comment_add(
    *,
    ticket: Ticket,
    body: str,
    public: bool,
    author_kind: str,
    author_id: str = "",
    external_id: str = "",
) -> TicketComment:
    """Append a comment. `public` is required: a private note must never become public by default."""
    comment = TicketComment(
        ticket=ticket,
        body=body,
        public=public,
        author_kind=author_kind,
        author_id=author_id,
        external_id=external_id,
    )
    comment.full_clean()
    comment.save()
    return comment


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
        ticket.tenant_link = _tenant_link_for(ticket.organization_id)
        changed.append("tenant_link")
    if detail.created_at and ticket.external_created_at is None:
        ticket.external_created_at = detail.created_at
        changed.append("external_created_at")
    return changed


def _ticket_upsert(*, parsed: ParsedEvent) -> Ticket:
    detail = parsed.ticket
    assert detail is not None
    ticket, created = Ticket.objects.get_or_create(
        source=Ticket.Source.ZENDESK,
        external_id=detail.id,
        defaults={"subject": (detail.subject or "")[:500], "raw_payload": parsed.raw},
    )
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    # Deliveries can arrive out of order: an older snapshot never overwrites a newer one.
    if (
        not created
        and detail.updated_at
        and ticket.external_updated_at
        and detail.updated_at < ticket.external_updated_at
    ):
        return ticket
    changed = _apply_detail(ticket, detail)
    if detail.updated_at:
        ticket.external_updated_at = detail.updated_at
    ticket.raw_payload = parsed.raw
    ticket.full_clean()
    ticket.save()
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


@transaction.atomic
def zendesk_event_ingest(*, parsed: ParsedEvent) -> IngestResult:
    """Store a verified Zendesk event once, apply it to its ticket, and enqueue a run for a new ticket.

    The unique (source, event_id) constraint makes redelivery, even concurrent redelivery, a no-op: the
    second insert waits for the first transaction and then fails, and we answer with what the first stored.
    """
    from agent.services import agent_run_create_for_new_ticket  # agent depends on tickets, not the reverse

    envelope = parsed.envelope
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                source=Ticket.Source.ZENDESK,
                event_id=envelope.id,
                event_type=envelope.type,
                payload=parsed.raw,
            )
    except IntegrityError:
        stored = WebhookEvent.objects.get(source=Ticket.Source.ZENDESK, event_id=envelope.id)
        return IngestResult(
            event_pk=stored.pk, ticket_id=stored.ticket_id, duplicate=True, handled=stored.handled, run_id=None
        )
    if not parsed.is_ticket_event:
        return IngestResult(event_pk=stored.pk, ticket_id=None, duplicate=False, handled=False, run_id=None)

    ticket = _ticket_upsert(parsed=parsed)
    if envelope.type == EVENT_COMMENT_ADDED and parsed.comment is not None:
        comment = parsed.comment
        if not ticket.comments.filter(external_id=comment.id).exists():
            ticket_comment_add(
                ticket=ticket,
                body=comment.body,
                public=comment.is_public,
                author_kind=(
                    TicketComment.AuthorKind.HUMAN if comment.author.is_staff else TicketComment.AuthorKind.CUSTOMER
                ),
                author_id=comment.author.id,
                external_id=comment.id,
            )
    run = None
    if envelope.type == EVENT_TICKET_CREATED:
        run = agent_run_create_for_new_ticket(ticket=ticket)
    stored.ticket = ticket
    stored.handled = True
    stored.save(update_fields=["ticket", "handled"])
    return IngestResult(
        event_pk=stored.pk, ticket_id=ticket.pk, duplicate=False, handled=True, run_id=run.pk if run else None
    )
