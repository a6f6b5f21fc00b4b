"""What the helpdesk says a ticket and its organization are now, applied to ours."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from agentconsole import rawsql
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import TenantLink, Ticket, TicketComment
from tickets.services.comments import ticket_comment_confirm
from tickets.snapshot import CommentSnapshot, OrganizationSnapshot, TicketSnapshot, marker_in, without_marker

# What a tenant id read from a helpdesk organization may look like; anything else leaves the ticket unlinked.
TENANT_ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def tenant_link_for(organization_id: str) -> TenantLink | None:
    if not organization_id:
        return None
    return TenantLink.objects.filter(organization_id=organization_id).first()


def _link_locked(organization_id: str) -> TenantLink | None:
    """The organization's tenant link (organization_id is unique), its row locked."""
    if not rawsql.postgresql():
        return TenantLink.objects.select_for_update().filter(organization_id=organization_id).first()
    rows = rawsql.execute(
        f"SELECT {rawsql.columns(TenantLink)} FROM {rawsql.table(TenantLink)} "  # noqa: S608 - names from the model's meta
        f"WHERE {rawsql.column(TenantLink, 'organization_id')} = %s FOR UPDATE",
        [organization_id],
    )
    return rawsql.load(TenantLink, rows[0]) if rows else None


# The stored Zendesk event, which a read of the ticket's context never uses (deferred: a read would load it).
_UNREAD = ("raw_payload",)


def _ticket_locked(pk: int) -> Ticket:
    """The ticket, its row locked, with its tenant link (which whoever works the ticket next reads). On PostgreSQL
    written by hand (agentconsole.rawsql: the ORM's columns and converters): every new ticket the agent works is
    read here first, and building the queryset cost more CPU than the statement."""
    if not rawsql.postgresql():
        tickets = Ticket.objects.select_for_update(of=("self",)).select_related("tenant_link")
        return tickets.defer(*_UNREAD).get(pk=pk)
    link_pk = rawsql.column(TenantLink, "id")
    rows = rawsql.execute(
        f"SELECT {rawsql.columns(Ticket, 't', _UNREAD)}, {rawsql.columns(TenantLink, 'l')} "  # noqa: S608 - names from the model's meta
        f"FROM {rawsql.table(Ticket)} t "
        f"LEFT JOIN {rawsql.table(TenantLink)} l ON l.{link_pk} = t.{rawsql.column(Ticket, 'tenant_link')} "
        f"WHERE t.{rawsql.column(Ticket, 'id')} = %s FOR UPDATE OF t",
        [pk],
    )
    if not rows:
        raise Ticket.DoesNotExist(f"No ticket {pk}.")
    ticket = rawsql.load(Ticket, rows[0], 0, _UNREAD)
    start = rawsql.width(Ticket, _UNREAD)
    link_pk_at = start + [field.primary_key for field in TenantLink._meta.concrete_fields].index(True)
    link = rawsql.load(TenantLink, rows[0], start) if rows[0][link_pk_at] is not None else None
    Ticket._meta.get_field("tenant_link").set_cached_value(ticket, link)
    return ticket


def _ticket_update(ticket: Ticket, fields: list[str]) -> None:
    """save(update_fields=fields), by hand on PostgreSQL: each field's own pre_save (updated_at's auto_now) and
    parameter, one UPDATE of the locked row."""
    if not rawsql.postgresql():
        ticket.save(update_fields=fields)
        return
    sets, params = [], []
    for name in fields:
        field = Ticket._meta.get_field(name)
        sets.append(f"{rawsql.quote(field.column)} = %s")
        params.append(rawsql.prep(Ticket, name, field.pre_save(ticket, False)))
    rawsql.run(
        f"UPDATE {rawsql.table(Ticket)} SET {', '.join(sets)} WHERE {rawsql.column(Ticket, 'id')} = %s",  # noqa: S608 - names from the model's meta
        [*params, ticket.pk],
    )


def email_or_blank(value: str) -> str:
    """The requester's e-mail as the ticket stores it: "" when it is not an address."""
    try:
        validate_email(value)
    except ValidationError:
        return ""
    return value


def tenant_link_sync(*, organization: OrganizationSnapshot) -> TenantLink | None:
    """The organization's tenant: an admin's manual link wins; otherwise the attribute ZENDESK_TENANT_FROM names
    (the external id or an organization field), kept as a synced link. An empty or malformed value links nothing:
    the ticket stays unlinked and the gate escalates it, as without a link."""
    link = _link_locked(organization.external_id)
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
    ticket = _ticket_locked(ticket.pk)
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
        put("requester_email", email_or_blank(requester.email))
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
            changed.append("tenant_link")
        ticket.tenant_link = link  # the link as synced just now, not the one loaded with the ticket
    put("custom_fields", snapshot.custom_fields)
    ticket.context_version = snapshot.updated_at.isoformat() if snapshot.updated_at else "local"
    ticket.context_fetched_at = timezone.now()
    # Only what changed is validated and written (a first read of a ticket whose fields already hold is an UPDATE
    # of the version it was read at): the row is locked, its other fields are as stored, its tenant link was just
    # read, and the database enforces the rest.
    written = {*changed, "context_version", "context_fetched_at", "updated_at"}
    ticket.full_clean(
        exclude=[f.name for f in Ticket._meta.concrete_fields if f.name not in written or f.name == "tenant_link"],
        validate_unique=False,
        validate_constraints=False,
    )
    _ticket_update(ticket, sorted(written))
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
