"""A ticket's comments: stored once, ours recognised by their marker when the helpdesk hands them back."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import Ticket, TicketComment
from tickets.snapshot import marker_in


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


def helpdesk_author_is_us(author_id: str) -> bool:
    """Whether this helpdesk user has posted comments for us before (learned from our own posts' answers)."""
    return bool(author_id) and (
        TicketComment.objects.filter(author_kind=TicketComment.AuthorKind.AGENT, author_id=author_id).exists()
    )


def comment_ours(ticket: Ticket, body: str, *, staff: bool) -> TicketComment | None:
    """Our stored comment this helpdesk comment is, by its marker. Only staff can be us: a customer who pastes a
    marker from a public reply stays a customer."""
    marker = marker_in(body)
    if not marker or not staff:
        return None
    return ticket.comments.filter(marker=marker, author_kind=TicketComment.AuthorKind.AGENT).first()
