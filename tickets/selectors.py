"""Reads of tickets, for the API."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from tickets.models import Ticket

# A ticket's runs belong to the agent, a layer above: reach them through the relation, never by importing agent.
_RUN_MODEL = Ticket._meta.get_field("runs").related_model
TICKET_ORDER = ("-created_at", "-id")  # newest first; the API pages by keyset on the (created_at, id) index


def ticket_list_filtered(*, status: str | None = None, workflow: str | None = None) -> QuerySet[Ticket]:
    """Tickets, newest first, optionally in one status or worked by one workflow (by slug)."""
    # Not the stored Zendesk event (raw_payload): TicketOut leaves it out, and it can be many times the rest of a row.
    tickets = Ticket.objects.select_related("tenant_link").defer("raw_payload").order_by(*TICKET_ORDER)
    if status:
        tickets = tickets.filter(status=status)
    if workflow:
        # A filter on the reverse relation could repeat a ticket with two runs; the subquery cannot.
        tickets = tickets.filter(pk__in=Ticket.objects.filter(runs__workflow__slug=workflow).values("pk"))
    return tickets


def ticket_detail_get(*, ticket_id: int) -> Ticket | None:
    """One ticket with its comments and the ids of its runs."""
    return (
        Ticket.objects.select_related("tenant_link")
        .prefetch_related("comments", Prefetch("runs", queryset=_RUN_MODEL.objects.only("id", "ticket_id")))
        .filter(pk=ticket_id)
        .first()
    )
