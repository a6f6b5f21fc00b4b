"""Writes to a ticket itself: its status, assignee (the claim), group and tags."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from agentconsole.errors import ConflictError, InvalidTransition
from audit.services import audit_event_record
from tickets.models import Ticket

TICKET_CLOSED = "A closed ticket cannot change status."
CLAIMED_BY_ANOTHER = "{name} has already claimed this ticket."
NOT_YOUR_CLAIM = "Only {name} can release this claim; take it instead."


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
