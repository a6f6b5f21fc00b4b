from __future__ import annotations

import base64
import re

import pytest

from tests.factories import TicketFactory
from tests.http_standin import serve
from tickets.helpdesk import HelpdeskError, LocalHelpdesk, ZendeskHelpdesk, helpdesk_for
from tickets.models import Ticket
from tickets.zendesk import ZendeskClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def zendesk():
    yield from serve()


@pytest.fixture
def client(zendesk) -> ZendeskHelpdesk:
    return ZendeskHelpdesk(base_url=zendesk.url, email="bot@example.com", api_token="tok-123", timeout=5)


@pytest.fixture
def ticket() -> Ticket:
    return TicketFactory(external_id="35436")


def test_it_posts_a_private_note_with_public_false_and_token_auth(zendesk, client, ticket) -> None:
    result = client.add_private_note(ticket, "4 failed logins in the last hour")

    [request] = zendesk.requests
    assert (request.method, request.path) == ("PUT", "/api/v2/tickets/35436.json")
    comment = request.json()["ticket"]["comment"]
    assert comment["public"] is False
    assert re.fullmatch(r"4 failed logins in the last hour\n\n— Agent Console · ref ac-[0-9a-f]{12}", comment["body"])
    expected_auth = base64.b64encode(b"bot@example.com/token:tok-123").decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert request.headers["content-type"] == "application/json"
    assert (result.backend, result.operation) == ("zendesk", "add_private_note")


def test_it_posts_a_public_reply(zendesk, client, ticket) -> None:
    client.add_public_reply(ticket, "Fixed, sorry for the trouble.", marker="ac-0123456789ab")
    assert zendesk.requests[0].json() == {
        "ticket": {
            "comment": {
                "body": "Fixed, sorry for the trouble.\n\n— Agent Console · ref ac-0123456789ab",
                "public": True,
            }
        }
    }


def test_it_sets_the_group_as_a_number(zendesk, client, ticket) -> None:
    client.set_group(ticket, "20001")
    assert zendesk.requests[0].json() == {"ticket": {"group_id": 20001}}


def test_it_adds_tags_through_the_tags_endpoint_with_put(zendesk, client, ticket) -> None:
    client.add_tags(ticket, ["agent_triaged", "pod_billing"])
    [request] = zendesk.requests
    assert (request.method, request.path) == ("PUT", "/api/v2/tickets/35436/tags.json")
    assert request.json() == {"tags": ["agent_triaged", "pod_billing"]}


def test_it_solves_the_ticket(zendesk, client, ticket) -> None:
    client.set_solved(ticket)
    assert zendesk.requests[0].json() == {"ticket": {"status": "solved"}}


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (422, False), (401, False)])
def test_it_raises_a_helpdesk_error_saying_whether_to_retry(zendesk, ticket, status, retryable) -> None:
    once = ZendeskHelpdesk(client=ZendeskClient(base_url=zendesk.url, email="a@b.c", api_token="t", timeout=5,
                                                max_attempts=1))  # fmt: skip
    zendesk.answer(status, {"error": "nope"})
    with pytest.raises(HelpdeskError) as caught:
        once.set_solved(ticket)
    assert (caught.value.status, caught.value.retryable) == (status, retryable)


def test_it_reports_an_unreachable_helpdesk_as_retryable(ticket) -> None:
    unreachable = ZendeskHelpdesk(base_url="http://127.0.0.1:9", email="a@b.c", api_token="t", timeout=1)
    with pytest.raises(HelpdeskError) as caught:
        unreachable.add_private_note(ticket, "x")
    assert caught.value.retryable is True


def test_it_applies_the_same_operations_locally(ticket) -> None:
    ticket.tags = ["existing"]
    ticket.save()
    local = LocalHelpdesk()
    local.add_private_note(ticket, "context")
    local.add_public_reply(ticket, "reply")
    local.set_group(ticket, "20003")
    local.add_tags(ticket, ["existing", "agent_triaged"])
    local.set_solved(ticket)

    ticket.refresh_from_db()
    assert list(ticket.comments.values_list("body", "public", "author_kind")) == [
        ("context", False, "agent"),
        ("reply", True, "agent"),
    ]
    assert (ticket.group_id, ticket.tags, ticket.status) == ("20003", ["existing", "agent_triaged"], "solved")


def test_it_uses_zendesk_only_when_credentials_are_set(settings, ticket) -> None:
    settings.ZENDESK_SUBDOMAIN = ""
    settings.ZENDESK_API_URL = ""
    assert isinstance(helpdesk_for(ticket), LocalHelpdesk)
    settings.ZENDESK_SUBDOMAIN, settings.ZENDESK_EMAIL, settings.ZENDESK_API_TOKEN = "acme", "bot@acme.io", "tok"
    assert isinstance(helpdesk_for(ticket), ZendeskHelpdesk)
    local_ticket = TicketFactory(source=Ticket.Source.LOCAL)
    assert isinstance(helpdesk_for(local_ticket), LocalHelpdesk)
