from __future__ import annotations

import pytest

from agentconsole.errors import InvalidTransition
from audit.models import AuditEvent
from tests.factories import TicketFactory, UserFactory
from tickets.services.tickets import TICKET_CLOSED, ticket_add_tags, ticket_set_group, ticket_set_status

pytestmark = pytest.mark.django_db


def test_it_changes_status_with_an_audit_event() -> None:
    ticket = TicketFactory(status="open")
    user = UserFactory()
    ticket = ticket_set_status(ticket=ticket, status="solved", user=user)
    assert ticket.status == "solved"
    assert ticket.solved_at is not None
    event = AuditEvent.objects.get(verb="ticket.status_changed")
    assert (event.actor, event.payload) == (user, {"from": "open", "to": "solved"})


def test_it_never_reopens_a_closed_ticket() -> None:
    ticket = TicketFactory(status="closed")
    with pytest.raises(InvalidTransition, match=TICKET_CLOSED):
        ticket_set_status(ticket=ticket, status="open")
    ticket.refresh_from_db()
    assert ticket.status == "closed"


def test_it_refuses_an_unknown_status() -> None:
    from django.core.exceptions import ValidationError

    ticket = TicketFactory(status="open")
    with pytest.raises(ValidationError):
        ticket_set_status(ticket=ticket, status="exploded")
    ticket.refresh_from_db()
    assert ticket.status == "open"
    assert not AuditEvent.objects.exists()


def test_it_adds_tags_without_dropping_existing_ones() -> None:
    ticket = TicketFactory(tags=["vip", "billing"])
    ticket = ticket_add_tags(ticket=ticket, tags=["billing", "agent_triaged", "agent_triaged"])
    assert ticket.tags == ["vip", "billing", "agent_triaged"]


def test_it_routes_with_an_audit_event() -> None:
    ticket = ticket_set_group(ticket=TicketFactory(group_id=""), group_id="20001")
    assert ticket.group_id == "20001"
    assert AuditEvent.objects.get(verb="ticket.routed").payload == {"from": "", "to": "20001"}
