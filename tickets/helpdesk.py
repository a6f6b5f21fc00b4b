"""The helpdesk the agent reads and writes: Zendesk when configured, otherwise the console's own tickets.

Both implement the same operations, so the demo and the tests run the same code path offline:
- read_ticket: the ticket's requester, organization, custom fields and comments (ticket_context_ensure caches it
  per ticket version);
- add_private_note / add_public_reply with a `marker`: posting is idempotent per marker. The intent (a pending
  comment with the marker) is stored before anything is sent; a later attempt with the same marker first asks
  comment_landed, and posts only if the first attempt never arrived. Give the same marker for a retry of the
  same intent (the agent uses its proposed action's idempotency key);
- comment_landed(ticket, marker): the comment carrying that marker if it is in the helpdesk, else None;
- set_group, add_tags, set_solved.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import httpx
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agentconsole import rawsql
from audit.models import AuditEvent
from tickets.models import HelpdeskUser, TenantLink, Ticket, TicketComment
from tickets.services.comments import ticket_comment_confirm, ticket_comment_intent
from tickets.services.sync import email_or_blank, ticket_snapshot_apply
from tickets.services.tickets import ticket_add_tags, ticket_set_group, ticket_set_status
from tickets.snapshot import (
    CommentSnapshot,
    HelpdeskError,
    HelpdeskResult,
    OrganizationSnapshot,
    RequesterSnapshot,
    TicketSnapshot,
    comment_marker,
    marker_in,
    with_marker,
)
from tickets.zendesk import ZendeskClient, comment_snapshot, ticket_snapshot_read

CONTEXT_REFRESH_TASK = "tickets.tasks.ticket_context_refresh_task"

__all__ = [
    "Helpdesk",
    "HelpdeskError",
    "HelpdeskResult",
    "LocalHelpdesk",
    "ZendeskHelpdesk",
    "helpdesk_for",
    "ticket_context_ensure",
    "zendesk_configured",
]


class Helpdesk(Protocol):
    name: str

    def read_ticket(self, ticket: Ticket) -> TicketSnapshot: ...
    def context_stale(self, ticket: Ticket) -> bool: ...
    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult: ...
    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult: ...
    def comment_landed(self, ticket: Ticket, marker: str) -> CommentSnapshot | None: ...
    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult: ...
    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult: ...
    def set_solved(self, ticket: Ticket) -> HelpdeskResult: ...


def _comment_result(backend: str, operation: str, comment: TicketComment, *, reused: bool) -> HelpdeskResult:
    data = {"comment_id": comment.pk}
    if comment.external_id and backend != "local":
        data["external_id"] = comment.external_id
    if reused:
        data["already_posted"] = True  # a retry of an intent that had already landed: nothing was sent again
    return HelpdeskResult(backend, operation, data)


class ZendeskHelpdesk:
    """Zendesk Support through ZendeskClient (tickets/zendesk.py)."""

    name = "zendesk"

    def __init__(
        self,
        *,
        client: ZendeskClient | None = None,
        base_url: str = "",
        email: str = "",
        api_token: str = "",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = client or ZendeskClient(
            base_url=base_url, email=email, api_token=api_token, timeout=timeout, transport=transport
        )

    # --- reads ----------------------------------------------------------------------------------------------------

    def read_ticket(self, ticket: Ticket) -> TicketSnapshot:
        return ticket_snapshot_read(self.client, ticket.external_id)

    def context_stale(self, ticket: Ticket) -> bool:
        """Read again when never read, or when a webhook reported a newer version than the one we hold."""
        held = parse_datetime(ticket.context_version) if ticket.context_version else None
        if held is None:
            return True
        return ticket.external_updated_at is not None and ticket.external_updated_at > held

    def comment_landed(self, ticket: Ticket, marker: str) -> CommentSnapshot | None:
        """Our comment with this marker among the ticket's most recent comments (one page, newest first). The
        author must be staff: a customer who copies a marker from a public reply is not us."""
        comments, users, _ = self.client.comments(ticket.external_id, newest_first=True)
        for raw in comments:
            snapshot = comment_snapshot(raw, users)
            if marker_in(snapshot.body) == marker and (snapshot.author_is_staff or snapshot.via_api):
                return snapshot
        return None

    # --- writes ---------------------------------------------------------------------------------------------------

    def _post(self, ticket: Ticket, body: str, *, public: bool, marker: str, operation: str) -> HelpdeskResult:
        with self.client.session():
            return self._post_once(ticket, body, public=public, marker=marker, operation=operation)

    def _post_once(self, ticket: Ticket, body: str, *, public: bool, marker: str, operation: str) -> HelpdeskResult:
        marker = marker or comment_marker()
        comment, created = ticket_comment_intent(ticket=ticket, body=body, public=public, marker=marker)
        if comment.delivery == TicketComment.Delivery.SENT:
            return _comment_result(self.name, operation, comment, reused=True)
        if not created:
            # An earlier attempt recorded this intent and never learned the outcome (a crash, a timeout).
            landed = self.comment_landed(ticket, marker)
            if landed is not None:
                comment = ticket_comment_confirm(
                    comment=comment, external_id=landed.external_id, author_id=landed.author_id
                )
                return _comment_result(self.name, operation, comment, reused=True)
        fields = {"comment": {"body": with_marker(body, marker), "public": public}}
        try:
            data = self.client.update_ticket(ticket.external_id, fields, idempotent=False)
        except HelpdeskError as exc:
            if not exc.ambiguous:
                raise
            # The post may have landed before the answer was lost: look once before reporting a failure.
            try:
                landed = self.comment_landed(ticket, marker)
            except HelpdeskError:
                raise exc from None
            if landed is None:
                raise
            comment = ticket_comment_confirm(
                comment=comment, external_id=landed.external_id, author_id=landed.author_id
            )
            return _comment_result(self.name, operation, comment, reused=True)
        external_id, author_id = _posted_comment(data)
        comment = ticket_comment_confirm(comment=comment, external_id=external_id, author_id=author_id)
        return _comment_result(self.name, operation, comment, reused=False)

    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        # `public: false` is always sent: Zendesk otherwise inherits the ticket's default, which may be public.
        return self._post(ticket, body, public=False, marker=marker, operation="add_private_note")

    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._post(ticket, body, public=True, marker=marker, operation="add_public_reply")

    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult:
        value: int | str = int(group_id) if group_id.isascii() and group_id.isdigit() else group_id
        self.client.update_ticket(ticket.external_id, {"group_id": value})
        return HelpdeskResult(self.name, "set_group", {"group_id": group_id})

    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult:
        data = self.client.add_tags(ticket.external_id, tags)
        return HelpdeskResult(self.name, "add_tags", {"tags": data.get("tags", tags)})

    def set_solved(self, ticket: Ticket) -> HelpdeskResult:
        self.client.update_ticket(ticket.external_id, {"status": "solved"})
        return HelpdeskResult(self.name, "set_solved", {"status": "solved"})


def _confirm(comment: TicketComment, landed: CommentSnapshot) -> TicketComment:
    return ticket_comment_confirm(comment=comment, external_id=landed.external_id, author_id=landed.author_id)


def _posted_comment(data: dict) -> tuple[str, str]:
    """The id and author of the comment a ticket update created, from the audit Zendesk answers with."""
    audit = data.get("audit") if isinstance(data.get("audit"), dict) else {}
    for event in audit.get("events") or []:
        if isinstance(event, dict) and event.get("type") == "Comment" and event.get("id") is not None:
            return str(event["id"]), str(event.get("author_id") or audit.get("author_id") or "")
    return "", str(audit.get("author_id") or "")


def _link_held(ticket: Ticket) -> TenantLink | None:
    """The organization's tenant link as loaded with the ticket (the loop's claim loads it), when it is the
    organization's: its name is all a local read takes from it, and ticket_snapshot_apply locks the link itself."""
    if not Ticket._meta.get_field("tenant_link").is_cached(ticket):
        return None
    link = ticket.tenant_link
    return link if link is not None and link.organization_id == ticket.organization_id else None


class LocalHelpdesk:
    """The console's own tickets, for the demo and for tickets that did not come from Zendesk. Requesters come from
    the local directory (HelpdeskUser); posting is one database write, idempotent per marker."""

    name = "local"

    def read_ticket(self, ticket: Ticket) -> TicketSnapshot:
        person = HelpdeskUser.objects.filter(external_id=ticket.requester_id).first() if ticket.requester_id else None
        link = _link_held(ticket)
        if link is None and ticket.organization_id:
            link = TenantLink.objects.filter(organization_id=ticket.organization_id).first()
        return TicketSnapshot(
            external_id=ticket.external_id,
            requester=RequesterSnapshot(
                external_id=person.external_id, name=person.name, email=person.email, locale=person.locale,
                fields=person.fields,
            )
            if person
            else None,
            organization=OrganizationSnapshot(
                external_id=ticket.organization_id, name=link.organization_name if link else ""
            )
            if ticket.organization_id
            else None,
        )  # fmt: skip

    def context_stale(self, ticket: Ticket) -> bool:
        return not ticket.context_version

    def comment_landed(self, ticket: Ticket, marker: str) -> CommentSnapshot | None:
        comment = ticket.comments.filter(marker=marker, delivery=TicketComment.Delivery.SENT).first()
        if comment is None:
            return None
        return CommentSnapshot(external_id=str(comment.pk), body=comment.body, public=comment.public)

    def _post(self, ticket: Ticket, body: str, *, public: bool, marker: str, operation: str) -> HelpdeskResult:
        with transaction.atomic():
            comment, created = ticket_comment_intent(
                ticket=ticket, body=body, public=public, marker=marker or comment_marker()
            )
            if comment.delivery != TicketComment.Delivery.SENT:
                comment = ticket_comment_confirm(comment=comment, external_id="", author_id="")
        return _comment_result(self.name, operation, comment, reused=not created)

    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._post(ticket, body, public=False, marker=marker, operation="add_private_note")

    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._post(ticket, body, public=True, marker=marker, operation="add_public_reply")

    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult:
        ticket = ticket_set_group(ticket=ticket, group_id=group_id, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_group", {"group_id": ticket.group_id})

    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult:
        ticket = ticket_add_tags(ticket=ticket, tags=tags)
        return HelpdeskResult(self.name, "add_tags", {"tags": ticket.tags})

    def set_solved(self, ticket: Ticket) -> HelpdeskResult:
        ticket = ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_solved", {"status": ticket.status})


def zendesk_configured() -> bool:
    return bool(settings.ZENDESK_SUBDOMAIN or settings.ZENDESK_API_URL) and bool(
        settings.ZENDESK_EMAIL and settings.ZENDESK_API_TOKEN
    )


def ticket_refresh_when_changed(*, ticket: Ticket, new_run: bool) -> None:
    """The webhook says the ticket changed: read it from Zendesk in the background (a worker, never this request),
    for the tickets the agent works on. A run that starts now reads it itself; an unchanged version reads nothing."""
    if new_run or ticket.source != Ticket.Source.ZENDESK or not zendesk_configured():
        return
    if not ticket.runs.exists():
        return
    held = parse_datetime(ticket.context_version) if ticket.context_version else None
    if held is not None and (ticket.external_updated_at is None or ticket.external_updated_at <= held):
        return
    # By the task's name: tickets.tasks imports this module, so importing it back would close a cycle.
    transaction.on_commit(lambda: current_app.send_task(CONTEXT_REFRESH_TASK, args=(ticket.pk,)), robust=True)


def zendesk_client() -> ZendeskClient:
    return ZendeskClient(
        base_url=settings.ZENDESK_API_URL or f"https://{settings.ZENDESK_SUBDOMAIN}.zendesk.com",
        email=settings.ZENDESK_EMAIL,
        api_token=settings.ZENDESK_API_TOKEN,
        timeout=settings.ZENDESK_TIMEOUT_SECONDS,
        max_attempts=settings.ZENDESK_MAX_ATTEMPTS,
        max_retry_after=settings.ZENDESK_MAX_RETRY_AFTER_SECONDS,
        max_pages=settings.ZENDESK_MAX_COMMENT_PAGES,
    )


def helpdesk_for(ticket: Ticket) -> Helpdesk:
    """Zendesk for Zendesk tickets when credentials are set; the local helpdesk otherwise."""
    if ticket.source == Ticket.Source.ZENDESK and zendesk_configured():
        return ZendeskHelpdesk(client=zendesk_client())
    return LocalHelpdesk()


def ticket_context_ensure(*, ticket: Ticket, force: bool = False, read: TicketSnapshot | None = None) -> Ticket:
    """The ticket with its requester, organization, custom fields and comments as of its current version: read
    from the helpdesk only when the version we hold is older than the one the webhook reported (or never read).
    Network first, outside any transaction; then one transaction applies what was read. `read`: the snapshot the
    caller read already (ticket_context_local_record's), not read again."""
    helpdesk = helpdesk_for(ticket)
    if not force and not helpdesk.context_stale(ticket):
        return ticket
    snapshot = read or helpdesk.read_ticket(ticket)
    if isinstance(helpdesk, LocalHelpdesk) and _local_read_changes_nothing(ticket, snapshot):
        _context_read_at(ticket, "local")
        return ticket
    return ticket_snapshot_apply(ticket=ticket, snapshot=snapshot)


_CONTEXT_READ = (
    'UPDATE "tickets_ticket" SET context_version = %s, context_fetched_at = %s, updated_at = %s WHERE id = %s'
)


class LocalRead(NamedTuple):
    """ticket_context_local_record's answer: `update`, the UPDATE that records a read changing nothing but the version
    read, with its parameters; or else `snapshot`, a read that changes more, for ticket_context_ensure's `read` (not
    read twice). Both None when nothing was read."""

    update: tuple[str, list[Any]] | None = None
    snapshot: TicketSnapshot | None = None


def ticket_context_local_record(*, ticket: Ticket) -> LocalRead:
    """ticket_context_ensure's read of a ticket of the console's own helpdesk when it changes nothing but the version
    read (_local_read_changes_nothing), as the UPDATE that records it (PostgreSQL), for a caller to make part of a
    statement of its own; call ticket_context_local_recorded once that is written. In every other case no UPDATE:
    then ticket_context_ensure reads it (given the snapshot read here, if any, so as not to read it twice)."""
    helpdesk = helpdesk_for(ticket)
    if not rawsql.postgresql() or not isinstance(helpdesk, LocalHelpdesk) or not helpdesk.context_stale(ticket):
        return LocalRead()
    snapshot = helpdesk.read_ticket(ticket)
    if not _local_read_changes_nothing(ticket, snapshot):
        return LocalRead(snapshot=snapshot)
    now = timezone.now()
    return LocalRead(update=(_CONTEXT_READ, ["local", now, now, ticket.pk]))


def ticket_context_local_recorded(*, ticket: Ticket, params: list[Any]) -> None:
    """ticket_context_local_record's UPDATE was written: the loaded ticket holds what it wrote."""
    ticket.context_version, ticket.context_fetched_at, ticket.updated_at = params[0], params[1], params[2]


def _local_read_changes_nothing(ticket: Ticket, snapshot: TicketSnapshot) -> bool:
    """Whether ticket_snapshot_apply would change nothing but the version read: the local helpdesk says only who the
    requester and the organization are (from this database), and the loaded ticket holds exactly that, linked to the
    organization's link as an admin made it (a manual link, which a sync keeps as it is).

    Then the read is recorded with one UPDATE of the version and its time, with no lock: the ticket's fields were
    compared as loaded moments ago (by the run's claim), and a change made since then is one made after this read
    (apply, which locks, would write the same and audit nothing)."""
    if any(
        value is not None
        for value in (snapshot.updated_at, snapshot.subject, snapshot.description, snapshot.priority, snapshot.tags,
                      snapshot.group_id, snapshot.custom_fields, snapshot.comments)
    ):  # fmt: skip
        return False
    requester, organization = snapshot.requester, snapshot.organization
    if requester is not None and (
        ticket.requester_id != requester.external_id[:64]
        or ticket.requester_name != requester.name[:200]
        or ticket.requester_email != email_or_blank(requester.email)
        or ticket.requester_locale != requester.locale[:32]
        or ticket.requester_fields != requester.fields
    ):
        return False
    if organization is None:
        return True
    link = _link_held(ticket)
    return (
        link is not None
        and link.source == TenantLink.Source.MANUAL
        and link.organization_id == organization.external_id
        and ticket.organization_id == organization.external_id[:64]
        and ticket.organization_name == organization.name[:200]
        and ticket.organization_external_id == organization.org_external_id[:200]
        and ticket.organization_fields == organization.fields
    )


def _context_read_at(ticket: Ticket, version: str) -> None:
    now = timezone.now()
    if rawsql.postgresql():
        rawsql.execute(
            'UPDATE "tickets_ticket" SET context_version = %s, context_fetched_at = %s, updated_at = %s '
            "WHERE id = %s RETURNING id",
            [version, now, now, ticket.pk],
        )
    else:
        Ticket.objects.filter(pk=ticket.pk).update(context_version=version, context_fetched_at=now, updated_at=now)
    ticket.context_version, ticket.context_fetched_at, ticket.updated_at = version, now, now
