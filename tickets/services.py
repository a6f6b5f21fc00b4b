"""Every write to tickets and their comments goes through here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agentconsole.errors import ConflictError, InvalidTransition
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import TenantLink, Ticket, TicketComment, WebhookEvent
from tickets.snapshot import CommentSnapshot, OrganizationSnapshot, TicketSnapshot, marker_in, without_marker
from tickets.zendesk_webhook import EVENT_COMMENT_ADDED, EVENT_TICKET_CREATED, Comment, ParsedEvent, TicketDetail

TICKET_CLOSED = "A closed ticket cannot change status."
EVENT_ON_CLOSED_TICKET = "The ticket is closed; closed tickets do not change, so the event was stored and ignored."
# What a tenant id read from a helpdesk organization may look like; anything else leaves the ticket unlinked.
TENANT_ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
CLAIMED_BY_ANOTHER = "{name} has already claimed this ticket."
NOT_YOUR_CLAIM = "Only {name} can release this claim; take it instead."


@dataclass(frozen=True)
class IngestResult:
    event_pk: int
    ticket_id: int | None
    duplicate: bool
    handled: bool
    run_id: int | None
    ignored_reason: str = ""


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
    author_name: str = "",
    attachments: list[str] | None = None,
    created_at: datetime | None = None,
) -> TicketComment:
    """Append a comment. `public` is required: a private note must never become public by default."""
    comment = TicketComment(
        ticket=ticket,
        body=body,
        public=public,
        author_kind=author_kind,
        author_id=author_id[:64],
        external_id=external_id,
        author_name=author_name[:200],
        attachments=attachments or [],
        created_at=created_at or timezone.now(),
    )
    comment.full_clean()
    comment.save()
    return comment


def ticket_comment_intent(*, ticket: Ticket, body: str, public: bool, marker: str) -> tuple[TicketComment, bool]:
    """Record that the agent is about to post this comment, before anything is sent: the row (pending, with its
    marker) is what a retry after a crash finds. Returns the row and whether this call created it; the same marker
    again returns the first row, whatever the body (one intent, one comment)."""
    try:
        with transaction.atomic():
            comment = TicketComment(
                ticket=ticket,
                body=body,
                public=public,
                author_kind=TicketComment.AuthorKind.AGENT,
                marker=marker,
                delivery=TicketComment.Delivery.PENDING,
            )
            comment.full_clean(validate_constraints=False)
            comment.save()
            return comment, True
    except IntegrityError:
        return TicketComment.objects.get(ticket=ticket, marker=marker), False


@transaction.atomic
def ticket_comment_confirm(*, comment: TicketComment, external_id: str, author_id: str) -> TicketComment:
    """Our comment is in the helpdesk (its answer, its webhook echo, or a look at its comments said so). Idempotent:
    the poster and the echo may both confirm it, in either order."""
    comment = TicketComment.objects.select_for_update().get(pk=comment.pk)
    if external_id and not comment.external_id:
        # A copy stored before we knew it was ours (a sync that raced the post) is the same comment: keep ours.
        TicketComment.objects.filter(ticket_id=comment.ticket_id, external_id=external_id).exclude(
            pk=comment.pk
        ).delete()
        comment.external_id = external_id
    if author_id and not comment.author_id:
        comment.author_id = author_id[:64]
    was_pending = comment.delivery == TicketComment.Delivery.PENDING
    comment.delivery = TicketComment.Delivery.SENT
    comment.save(update_fields=["external_id", "author_id", "delivery"])
    if was_pending:
        audit_event_record(
            verb="comment.posted",
            obj=comment,
            payload={"ticket": comment.ticket_id, "marker": comment.marker, "external_id": comment.external_id},
            actor_kind=AuditEvent.ActorKind.AGENT,
        )
    return comment


def _api_author(author_id: str) -> bool:
    """Whether this helpdesk user has posted comments for us before (learned from our own posts' answers)."""
    return bool(author_id) and (
        TicketComment.objects.filter(author_kind=TicketComment.AuthorKind.AGENT, author_id=author_id).exists()
    )


def _ours(ticket: Ticket, body: str, *, staff: bool) -> TicketComment | None:
    """Our stored comment this helpdesk comment is, by its marker. Only staff can be us: a customer who pastes a
    marker from a public reply stays a customer."""
    marker = marker_in(body)
    if not marker or not staff:
        return None
    return ticket.comments.filter(marker=marker, author_kind=TicketComment.AuthorKind.AGENT).first()


def _valid_email(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def tenant_link_sync(*, organization: OrganizationSnapshot) -> TenantLink | None:
    """The organization's tenant: an admin's manual link wins; otherwise the attribute ZENDESK_TENANT_FROM names
    (the external id or an organization field), kept as a synced link. An empty or malformed value links nothing:
    the ticket stays unlinked and the gate escalates it, as without a link."""
    link = TenantLink.objects.select_for_update().filter(organization_id=organization.external_id).first()
    if link is not None and link.source == TenantLink.Source.MANUAL:
        return link
    source = settings.ZENDESK_TENANT_FROM
    if not source:
        return None
    if source == "external_id":
        value = organization.org_external_id
    else:
        value = organization.fields.get(source.removeprefix("organization_field:"))
    tenant_id = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not TENANT_ID_SHAPE.match(tenant_id):
        if link is not None:
            audit_event_record(
                verb="tenant_link.unsynced",
                obj=link,
                payload={"organization_id": link.organization_id, "was": link.tenant_id, "source": source},
                actor_kind=AuditEvent.ActorKind.SYSTEM,
            )
            link.delete()
        return None
    if link is not None and (link.tenant_id, link.synced_from) == (tenant_id, source):
        if organization.name and link.organization_name != organization.name[:200]:
            link.organization_name = organization.name[:200]
            link.save(update_fields=["organization_name", "updated_at"])
        return link
    previous = link.tenant_id if link else None
    link = link or TenantLink(organization_id=organization.external_id, source=TenantLink.Source.SYNCED)
    link.tenant_id = tenant_id
    link.synced_from = source
    link.organization_name = organization.name[:200] or link.organization_name
    link.full_clean(validate_unique=False)
    link.save()
    audit_event_record(
        verb="tenant_link.synced",
        obj=link,
        payload={"organization_id": link.organization_id, "from": previous, "to": tenant_id, "source": source},
        actor_kind=AuditEvent.ActorKind.SYSTEM,
    )
    return link


def _comments_sync(ticket: Ticket, comments: list[CommentSnapshot]) -> int:
    """Store the comments we did not have (in one insert: a long ticket's first read stays quick); recognise ours
    by marker; fill in authors and attachments of the ones we had."""
    known = {c.external_id: c for c in ticket.comments.exclude(external_id="")}
    ours = {c.marker: c for c in ticket.comments.filter(author_kind=TicketComment.AuthorKind.AGENT).exclude(marker="")}
    new: list[TicketComment] = []
    seen: set[str] = set()
    for index, snapshot in enumerate(comments):
        if not snapshot.external_id or snapshot.external_id in seen:
            continue
        seen.add(snapshot.external_id)
        existing = known.get(snapshot.external_id)
        if existing is not None:
            updates = {"author_name": snapshot.author_name[:200], "attachments": snapshot.attachments}
            changed = [name for name, value in updates.items() if value and getattr(existing, name) != value]
            for name in changed:
                setattr(existing, name, updates[name])
            if changed:
                existing.save(update_fields=changed)
            continue
        marker = marker_in(snapshot.body)
        staff = snapshot.author_is_staff or snapshot.via_api
        if marker and staff and marker in ours:
            ticket_comment_confirm(comment=ours[marker], external_id=snapshot.external_id, author_id=snapshot.author_id)
            continue
        if index == 0 and snapshot.body.strip() == ticket.description.strip():
            continue  # Zendesk's first comment is the description, which the ticket already holds
        mine = bool(marker) and snapshot.author_is_staff and snapshot.via_api
        if mine:
            kind = TicketComment.AuthorKind.AGENT
        elif snapshot.author_is_staff:
            kind = TicketComment.AuthorKind.HUMAN
        else:
            kind = TicketComment.AuthorKind.CUSTOMER
        comment = TicketComment(
            ticket=ticket,
            body=without_marker(snapshot.body) if mine else snapshot.body,
            public=snapshot.public,
            author_kind=kind,
            author_id=snapshot.author_id[:64],
            external_id=snapshot.external_id,
            author_name=snapshot.author_name[:200],
            attachments=snapshot.attachments,
            created_at=snapshot.created_at or timezone.now(),
        )
        # The ticket is loaded and the database enforces uniqueness: per-row uniqueness queries would cost a
        # round trip per comment.
        comment.full_clean(exclude=["ticket"], validate_unique=False, validate_constraints=False)
        new.append(comment)
    TicketComment.objects.bulk_create(new)
    return len(new)


@transaction.atomic
def ticket_snapshot_apply(*, ticket: Ticket, snapshot: TicketSnapshot) -> Ticket:
    """Store what the helpdesk said about a ticket at one version: its fields (unless the webhook already brought
    a newer version), requester, organization and tenant, custom fields and comments."""
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    changed: list[str] = []

    def put(field: str, value: Any) -> None:
        if value is not None and getattr(ticket, field) != value:
            setattr(ticket, field, value)
            changed.append(field)

    held = ticket.external_updated_at
    if snapshot.updated_at is None or held is None or snapshot.updated_at >= held:
        put("subject", snapshot.subject[:500] if snapshot.subject is not None else None)
        put("description", snapshot.description)
        put("priority", snapshot.priority if snapshot.priority in Ticket.Priority.values else None)
        put("tags", snapshot.tags)
        put("group_id", snapshot.group_id)
        if snapshot.updated_at is not None:
            put("external_updated_at", snapshot.updated_at)
    requester = snapshot.requester
    if requester is not None:
        put("requester_id", requester.external_id[:64])
        put("requester_name", requester.name[:200])
        put("requester_email", _valid_email(requester.email))
        put("requester_locale", requester.locale[:32])
        put("requester_fields", requester.fields)
    organization = snapshot.organization
    if organization is not None:
        put("organization_id", organization.external_id[:64])
        put("organization_name", organization.name[:200])
        put("organization_external_id", organization.org_external_id[:200])
        put("organization_fields", organization.fields)
        link = tenant_link_sync(organization=organization)
        if ticket.tenant_link_id != (link.pk if link else None):
            ticket.tenant_link = link
            changed.append("tenant_link")
    put("custom_fields", snapshot.custom_fields)
    ticket.context_version = snapshot.updated_at.isoformat() if snapshot.updated_at else "local"
    ticket.context_fetched_at = timezone.now()
    ticket.full_clean()
    ticket.save()
    added = _comments_sync(ticket, snapshot.comments) if snapshot.comments is not None else 0
    if changed or added:
        audit_event_record(
            verb="ticket.context_synced",
            obj=ticket,
            payload={
                "version": ticket.context_version,
                "fields": sorted(changed),
                "comments_added": added,
                "comments_truncated": snapshot.comments_truncated,
            },
            actor_kind=AuditEvent.ActorKind.SYSTEM,
        )
    return ticket


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


def _ticket_upsert(*, parsed: ParsedEvent) -> tuple[Ticket, bool]:
    """Create or update the ticket from the event's snapshot. True second: the ticket is closed, nothing applied."""
    detail = parsed.ticket
    assert detail is not None
    ticket, created = Ticket.objects.get_or_create(
        source=Ticket.Source.ZENDESK,
        external_id=detail.id,
        defaults={"subject": (detail.subject or "")[:500], "raw_payload": parsed.raw},
    )
    ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
    if not created and ticket.status == Ticket.Status.CLOSED:
        return ticket, True
    # Deliveries can arrive out of order: an older snapshot never overwrites a newer one.
    if (
        not created
        and detail.updated_at
        and ticket.external_updated_at
        and detail.updated_at < ticket.external_updated_at
    ):
        return ticket, False
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
    return ticket, False


def _refresh_when_changed(ticket: Ticket, *, new_run: bool) -> None:
    """The webhook says the ticket changed: read it from Zendesk in the background (a worker, never this request),
    for the tickets the agent works on. A run that starts now reads it itself; an unchanged version reads nothing."""
    from tickets.helpdesk import zendesk_configured
    from tickets.tasks import ticket_context_refresh_task

    if new_run or ticket.source != Ticket.Source.ZENDESK or not zendesk_configured():
        return
    if not ticket.runs.exists():
        return
    held = parse_datetime(ticket.context_version) if ticket.context_version else None
    if held is not None and (ticket.external_updated_at is None or ticket.external_updated_at <= held):
        return
    transaction.on_commit(lambda: ticket_context_refresh_task.delay(ticket.pk), robust=True)


def _comment_ingest(ticket: Ticket, comment: Comment) -> TicketComment | None:
    """Store a comment the webhook brought, once. Our own comment coming back is recognised (marker, staff author)
    and confirmed instead of stored as a human's. Returns the new comment, or None when there was nothing new."""
    ours = _ours(ticket, comment.body, staff=comment.author.is_staff)
    if ours is not None:
        ticket_comment_confirm(comment=ours, external_id=comment.id, author_id=comment.author.id)
        return None
    if ticket.comments.filter(external_id=comment.id).exists():
        return None
    mine = bool(marker_in(comment.body)) and comment.author.is_staff and _api_author(comment.author.id)
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


@transaction.atomic
def zendesk_event_ingest(*, parsed: ParsedEvent) -> IngestResult:
    """Store a verified Zendesk event once, apply it to its ticket, and enqueue a run for a new ticket or for a
    customer's comment on a ticket whose run has ended (a comment on a run still in progress joins its context).

    The unique (source, event_id) constraint makes redelivery, even concurrent redelivery, a no-op: the
    second insert waits for the first transaction and then fails, and we answer with what the first stored.
    """
    # agent depends on tickets, not the reverse
    from agent.services.intake import agent_run_create_for_new_ticket, agent_run_on_customer_comment

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
            event_pk=stored.pk,
            ticket_id=stored.ticket_id,
            duplicate=True,
            handled=stored.handled,
            run_id=None,
            ignored_reason=stored.ignored_reason,
        )
    if not parsed.is_ticket_event:
        return IngestResult(event_pk=stored.pk, ticket_id=None, duplicate=False, handled=False, run_id=None)

    ticket, closed = _ticket_upsert(parsed=parsed)
    if closed:
        # Zendesk never changes a closed ticket (a reply makes a follow-up ticket): a late or replayed event for
        # one is kept for the record and changes nothing. Answering an error would only make the sender retry.
        stored.ticket = ticket
        stored.ignored_reason = EVENT_ON_CLOSED_TICKET
        stored.save(update_fields=["ticket", "ignored_reason"])
        return IngestResult(
            event_pk=stored.pk,
            ticket_id=ticket.pk,
            duplicate=False,
            handled=False,
            run_id=None,
            ignored_reason=EVENT_ON_CLOSED_TICKET,
        )
    run = None
    if envelope.type == EVENT_COMMENT_ADDED and parsed.comment is not None:
        stored_comment = _comment_ingest(ticket, parsed.comment)
        if (
            stored_comment is not None
            and stored_comment.public
            and stored_comment.author_kind == TicketComment.AuthorKind.CUSTOMER
        ):
            run = agent_run_on_customer_comment(ticket=ticket, comment=stored_comment)
    if envelope.type == EVENT_TICKET_CREATED:
        run = agent_run_create_for_new_ticket(ticket=ticket)
    _refresh_when_changed(ticket, new_run=run is not None)
    stored.ticket = ticket
    stored.handled = True
    stored.save(update_fields=["ticket", "handled"])
    return IngestResult(
        event_pk=stored.pk, ticket_id=ticket.pk, duplicate=False, handled=True, run_id=run.pk if run else None
    )
