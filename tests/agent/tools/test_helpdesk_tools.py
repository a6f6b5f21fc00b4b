from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from agent.catalogue import get_tool
from agent.tools.base import ErrorType, Observation, ToolContext
from tests.factories import TicketFactory
from tests.http_standin import StandIn, serve
from tickets.models import Ticket, TicketComment


@pytest.fixture
def ticket(db: None) -> Ticket:
    return TicketFactory(source=Ticket.Source.LOCAL, status=Ticket.Status.OPEN)


@pytest.fixture
def zendesk(settings: Any) -> Iterator[StandIn]:
    """Zendesk configured and pointed at a local stand-in."""
    for stand_in in serve(StandIn(), ""):
        settings.ZENDESK_API_URL = stand_in.url
        settings.ZENDESK_EMAIL = "agent@example.com"
        settings.ZENDESK_API_TOKEN = "zendesk-token"
        yield stand_in


def call(name: str, args: dict, ticket_id: int) -> Observation:
    tool = get_tool(name)
    assert tool is not None
    return tool.invoke(args, ToolContext(ticket_id=ticket_id, tenant_id="acme"))


def test_it_adds_a_private_note(ticket: Ticket) -> None:
    observation = call("add_private_note", {"body": "Cache version was 4; reset it."}, ticket.pk)

    assert observation.ok is True
    [comment] = ticket.comments.all()
    assert comment.public is False
    assert comment.author_kind == TicketComment.AuthorKind.AGENT
    assert comment.body == "Cache version was 4; reset it."
    assert observation.data == {"comment_id": comment.pk}
    assert observation.meta["backend"] == "local"


def test_it_replies_to_the_customer_in_public(ticket: Ticket) -> None:
    observation = call("reply_to_customer", {"body": "Fixed, sorry for the trouble."}, ticket.pk)

    assert observation.ok is True
    [comment] = ticket.comments.all()
    assert comment.public is True
    assert comment.body == "Fixed, sorry for the trouble."


def test_it_routes_the_ticket_to_a_pods_group(ticket: Ticket, settings: Any) -> None:
    settings.HELPDESK_PODS = {"humans": "20000", "billing": "20001"}

    observation = call("route_ticket", {"pod": "billing"}, ticket.pk)

    assert observation.ok is True
    assert observation.data == {
        "group_id": "20001",
        "pod": "billing",
        "pod_owns": settings.HELPDESK_POD_DESCRIPTIONS["billing"],
        "reason": "",
    }
    ticket.refresh_from_db()
    assert ticket.group_id == "20001"


def test_it_refuses_an_unknown_pod_listing_the_allowed_ones(ticket: Ticket, settings: Any) -> None:
    settings.HELPDESK_PODS = {"humans": "20000", "billing": "20001"}

    observation = call("route_ticket", {"pod": "sales"}, ticket.pk)

    assert observation.ok is False
    assert observation.error_type == ErrorType.REFUSED
    assert "billing, humans" in observation.message
    assert observation.meta["allowed_pods"] == ["billing", "humans"]
    ticket.refresh_from_db()
    assert ticket.group_id == ""


def test_it_describes_the_pods_in_force_with_what_each_owns(settings: Any) -> None:
    settings.HELPDESK_PODS = {"humans": "1", "payments": "2"}
    settings.HELPDESK_POD_DESCRIPTIONS = {"humans": "People.", "payments": "Cards and refunds."}
    tool = get_tool("route_ticket")
    assert tool is not None

    description = tool.spec()["description"]
    assert "humans: People.; payments: Cards and refunds." in description
    assert "billing" not in description
    assert "reason" in tool.spec()["input_schema"]["properties"]


def test_it_solves_the_ticket(ticket: Ticket) -> None:
    observation = call("solve_ticket", {}, ticket.pk)

    assert observation.ok is True
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.SOLVED
    assert ticket.solved_at is not None


def test_it_refuses_to_solve_a_closed_ticket(db: None) -> None:
    closed = TicketFactory(source=Ticket.Source.LOCAL, status=Ticket.Status.CLOSED)

    observation = call("solve_ticket", {}, closed.pk)

    assert observation.ok is False
    assert observation.error_type == ErrorType.REFUSED
    closed.refresh_from_db()
    assert closed.status == Ticket.Status.CLOSED


def test_it_rejects_arguments_for_solve(ticket: Ticket) -> None:
    observation = call("solve_ticket", {"ticket_id": 99}, ticket.pk)

    assert observation.error_type == ErrorType.INVALID_ARGUMENTS
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN


def test_it_reports_a_missing_ticket(db: None) -> None:
    observation = call("add_private_note", {"body": "hello"}, 987654)

    assert observation.error_type == ErrorType.NOT_FOUND


def test_it_sends_a_private_note_to_zendesk(db: None, zendesk: StandIn) -> None:
    zendesk_ticket = TicketFactory(source=Ticket.Source.ZENDESK, external_id="35436")
    zendesk.answer(200, {"ticket": {"id": 35436}})

    observation = call("add_private_note", {"body": "Found it."}, zendesk_ticket.pk)

    assert observation.ok is True
    assert observation.meta["backend"] == "zendesk"
    [request] = zendesk.requests
    assert (request.method, request.path) == ("PUT", "/api/v2/tickets/35436.json")
    comment = request.json()["ticket"]["comment"]
    assert comment["public"] is False
    # Our marker travels in the body, so the comment is recognised when the webhook brings it back.
    assert re.fullmatch(r"Found it\.\n\n— Agent Console · ref ac-[0-9a-f]{12}", comment["body"])
    [stored] = zendesk_ticket.comments.all()
    assert (stored.body, stored.author_kind, stored.marker) == ("Found it.", "agent", comment["body"][-15:])


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (422, False)])
def test_it_turns_a_helpdesk_error_into_a_failure_with_retryable(
    db: None, zendesk: StandIn, status: int, retryable: bool, settings: Any
) -> None:
    settings.ZENDESK_MAX_ATTEMPTS = 1
    zendesk_ticket = TicketFactory(source=Ticket.Source.ZENDESK)
    zendesk.answer(status, {"error": "nope"})

    observation = call("solve_ticket", {}, zendesk_ticket.pk)

    assert observation.ok is False
    assert observation.error_type == ErrorType.UPSTREAM
    assert observation.retryable is retryable
    assert observation.meta["status_code"] == status
    assert f"HTTP {status}" in observation.message


@pytest.mark.parametrize(("name", "public"), [("reply_to_customer", True), ("add_private_note", False)])
def test_it_posts_once_per_proposed_action_when_a_resumed_run_calls_again(ticket: Ticket, name, public) -> None:
    # A worker killed after posting but before recording the post: the resumed run calls with the same key.
    tool = get_tool(name)
    ctx = ToolContext(ticket_id=ticket.pk, tenant_id="acme", idempotency_key="agent-console-0b8f1c2e")
    first = tool.invoke({"body": "Fixed."}, ctx)
    again = tool.invoke({"body": "Fixed."}, ctx)
    other = tool.invoke({"body": "Fixed."}, ToolContext(ticket_id=ticket.pk, tenant_id="acme", idempotency_key="k2"))

    assert again.data == {**first.data, "already_posted": True}
    assert ticket.comments.filter(public=public).count() == 2  # the same key once, another key again
    assert other.data["comment_id"] != first.data["comment_id"]
