"""The Zendesk client at the HTTP boundary: exact paths, pagination, 429 Retry-After, what is and is not retried."""

from __future__ import annotations

import base64

import pytest

from tests.zendesk_standin import ZendeskStandIn
from tickets.snapshot import HelpdeskError
from tickets.zendesk import ZendeskClient, ticket_snapshot_read


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(zendesk_api: ZendeskStandIn, slept: list[float]) -> ZendeskClient:
    return ZendeskClient(
        base_url=zendesk_api.url,
        email="agent@example.com",
        api_token="zendesk-token",
        timeout=5,
        max_attempts=3,
        max_retry_after=30,
        sleep=slept.append,
    )


@pytest.fixture
def ticket(zendesk_api: ZendeskStandIn) -> dict:
    zendesk_api.add_user(
        701, name="Olivia Park", email="ops@initech.example", locale="en-US", user_fields={"plan_tier": "gold"}
    )
    zendesk_api.add_user(702, name="Sam Support", email="sam@support.example", role="agent")
    zendesk_api.organizations["801"] = {
        "id": 801,
        "name": "Initech Payroll",
        "external_id": "initech",
        "organization_fields": {"tenant_id": "initech", "tier": "starter"},
    }
    zendesk_api.ticket_fields = [{"id": 41, "title": "Product area"}, {"id": 42, "title": "Severity"}]
    ticket = zendesk_api.add_ticket(
        35436,
        subject="Locked out",
        description="I get 'account locked'.",
        requester_id=701,
        organization_id=801,
        custom_fields=[{"id": 41, "value": "login"}, {"id": 42, "value": None}],
        updated_at="2026-11-23T10:30:00Z",
    )
    zendesk_api.add_comment(35436, body="I get 'account locked'.", author_id=701, created_at="2026-11-23T10:00:00Z")
    zendesk_api.add_comment(
        35436,
        body="Looking into it.",
        public=False,
        author_id=702,
        attachments=[{"file_name": "screenshot.png"}],
        created_at="2026-11-23T10:10:00Z",
    )
    for minute in range(3):
        zendesk_api.add_comment(
            35436, body=f"Still locked ({minute})", author_id=701, created_at=f"2026-11-23T10:2{minute}:00Z"
        )
    return ticket


def test_it_reads_the_ticket_requester_organization_fields_and_every_comment_page(
    zendesk_api: ZendeskStandIn, client: ZendeskClient, ticket: dict
) -> None:
    zendesk_api.page_size = 2  # five comments: three pages

    snapshot = ticket_snapshot_read(client, "35436")

    assert zendesk_api.paths() == [
        "GET /api/v2/tickets/35436.json?include=users,organizations",
        "GET /api/v2/tickets/35436/comments.json?include=users&page[size]=100",
        "GET /api/v2/tickets/35436/comments.json?include=users&page[size]=100&page[after]=c2",
        "GET /api/v2/tickets/35436/comments.json?include=users&page[size]=100&page[after]=c4",
        "GET /api/v2/ticket_fields.json?page[size]=100",
    ]
    token = base64.b64encode(b"agent@example.com/token:zendesk-token").decode()
    assert {r.headers["authorization"] for r in zendesk_api.requests} == {f"Basic {token}"}
    requester = snapshot.requester
    assert requester is not None
    assert (requester.name, requester.email, requester.locale) == ("Olivia Park", "ops@initech.example", "en-US")
    assert requester.fields == {"plan_tier": "gold"}
    organization = snapshot.organization
    assert organization is not None
    assert (organization.name, organization.org_external_id) == ("Initech Payroll", "initech")
    assert organization.fields == {"tenant_id": "initech", "tier": "starter"}
    assert snapshot.custom_fields == [{"id": "41", "title": "Product area", "value": "login"}]
    assert [c.body for c in snapshot.comments] == [
        "I get 'account locked'.",
        "Looking into it.",
        "Still locked (0)",
        "Still locked (1)",
        "Still locked (2)",
    ]
    staff = snapshot.comments[1]
    assert (staff.author_name, staff.author_is_staff, staff.public, staff.attachments) == (
        "Sam Support",
        True,
        False,
        ["screenshot.png"],
    )
    assert snapshot.comments[0].author_is_staff is False
    assert snapshot.comments_truncated is False


def test_it_never_follows_a_host_named_in_a_response(
    zendesk_api: ZendeskStandIn, client: ZendeskClient, ticket
) -> None:
    zendesk_api.page_size = 2  # each page's links.next points at another host; the cursor is used instead
    ticket_snapshot_read(client, "35436")
    assert all(r.path.startswith("/api/v2/") for r in zendesk_api.requests)


def test_it_stops_at_the_page_limit_and_says_so(zendesk_api: ZendeskStandIn, ticket, slept) -> None:
    zendesk_api.page_size = 1
    bounded = ZendeskClient(
        base_url=zendesk_api.url, email="a@b.c", api_token="t", timeout=5, max_pages=2, sleep=slept.append
    )
    comments, _, truncated = bounded.comments("35436")
    assert (len(comments), truncated) == (2, True)


def test_it_waits_out_a_short_retry_after_then_retries(zendesk_api: ZendeskStandIn, client, ticket, slept) -> None:
    zendesk_api.answer(429, {"error": "TooManyRequests"}, {"Retry-After": "7"})

    data = client.ticket("35436")

    assert data["ticket"]["id"] == 35436
    assert zendesk_api.paths() == ["GET /api/v2/tickets/35436.json?include=users,organizations"] * 2
    assert slept == [7.0]


def test_it_hands_a_long_retry_after_back_instead_of_sleeping(zendesk_api: ZendeskStandIn, client, slept) -> None:
    zendesk_api.answer(429, {"error": "TooManyRequests"}, {"Retry-After": "120"})

    with pytest.raises(HelpdeskError) as caught:
        client.ticket("35436")

    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (429, True, 120.0)
    assert len(zendesk_api.requests) == 1
    assert slept == []


def test_it_gives_up_after_its_attempts_on_repeated_429(zendesk_api: ZendeskStandIn, client, slept) -> None:
    for _ in range(3):
        zendesk_api.answer(429, {}, {"Retry-After": "1"})
    with pytest.raises(HelpdeskError) as caught:
        client.ticket("35436")
    assert caught.value.retryable is True
    assert (len(zendesk_api.requests), slept) == (3, [1.0, 1.0])


def test_it_retries_a_read_after_a_5xx_but_never_a_comment_post(zendesk_api: ZendeskStandIn, client, ticket) -> None:
    zendesk_api.answer(503, {"error": "Unavailable"})
    assert client.ticket("35436")["ticket"]["id"] == 35436
    assert len(zendesk_api.requests) == 2

    zendesk_api.answer(503, {"error": "Unavailable"})
    with pytest.raises(HelpdeskError) as caught:
        client.update_ticket("35436", {"comment": {"body": "x", "public": False}}, idempotent=False)
    assert (caught.value.status, caught.value.ambiguous) == (503, True)
    assert len(zendesk_api.puts()) == 1


def test_it_reports_zendesks_own_words_and_does_not_retry_a_client_error(zendesk_api: ZendeskStandIn, client) -> None:
    with pytest.raises(HelpdeskError) as caught:
        client.ticket("404404")
    assert caught.value.message == "The helpdesk answered HTTP 404 (RecordNotFound: Not found)."
    assert (caught.value.retryable, caught.value.ambiguous) == (False, False)
    assert len(zendesk_api.requests) == 1


def test_it_reports_a_body_that_is_not_json(zendesk_api: ZendeskStandIn, client) -> None:
    zendesk_api.answer(200, raw=b"<html>maintenance</html>")
    with pytest.raises(HelpdeskError, match="not JSON"):
        client.ticket("35436")
