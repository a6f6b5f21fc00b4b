"""A company other than the sandbox, connected by configuration only (its OpenAPI document, its contract file and
settings), works a ticket end to end: the real webhook, a real Celery worker, the real loop and gate, its own
Admin API over HTTP with its own API-key header. The product knows nothing of Northwind but its configuration."""

from __future__ import annotations

import pytest
from django.conf import settings

from agent.models import Workflow
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.companies.northwind import API_KEY, KEY_HEADER
from tickets.models import TenantLink

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SEAT_WORKFLOW = {
    "slug": "seat-cap",
    "name": "Seat cap raise",
    "phase": Workflow.Phase.AUTONOMOUS,
    "match_tags": ["seat_cap"],
    "preapproved_tools": ["raise_seat_cap"],
    "tools": ["get_usage", "raise_seat_cap", "add_private_note", "route_ticket", "reply_to_customer", "solve_ticket"],
    "tool_limits": {"raise_seat_cap": {"extra_seats": {"max": 10}}},
    "runbook": "1. Read the usage. 2. Raise the seat cap by 5. 3. Tell the customer, then solve the ticket.",
    "playbook": [
        {"tool": "get_usage", "why": "see how many seats are in use", "args": {"tenant_id": "{tenant_id}"}},
        {"tool": "raise_seat_cap", "why": "make room", "args": {"tenant_id": "{tenant_id}", "extra_seats": 5}},
        {
            "tool": "reply_to_customer",
            "why": "tell the customer",
            "args": {"body": "Hello, we raised your seat cap by 5 seats: your new colleagues can sign in now."},
        },
        {"tool": "solve_ticket", "why": "close the loop", "args": {}},
    ],
}


@pytest.fixture
def connected(northwind, worker):
    TenantLink.objects.create(organization_id="990001", organization_name="Fabrikam", tenant_id="nw-1042")
    Workflow.objects.create(**SEAT_WORKFLOW)
    worker.env.update(
        ADMIN_API_URL=northwind.url, ADMIN_API_AUTH="api_key", ADMIN_API_KEY_HEADER=KEY_HEADER, ADMIN_API_KEY=API_KEY
    )
    return northwind


def _comments(ticket, *, public: bool) -> list[str]:
    return list(ticket.comments.filter(public=public, author_kind="agent").values_list("body", flat=True))


def test_it_resolves_a_ticket_for_a_company_connected_by_configuration_only(connected, worker) -> None:
    worker.start()
    ticket = deliver(8101, "990001", "We hit our seat cap", "New hires cannot sign in", ["seat_cap"])

    run = wait_for_run(ticket, {"completed"}, worker)

    action = run.actions.get(tool="raise_seat_cap")
    assert (action.status, action.verification, action.decided_by) == ("executed", "passed", None)
    assert connected.accounts["nw-1042"].seat_cap == 25
    calls = [(r.method, r.path.split("?")[0]) for r in connected.requests]
    assert calls == [
        ("GET", "/api/v2/accounts/nw-1042/usage"),  # the read
        ("GET", "/api/v2/accounts/nw-1042"),  # the contract's precondition read
        ("POST", "/api/v2/accounts/nw-1042/seat-cap:raise"),  # the write
        ("GET", "/api/v2/accounts/nw-1042"),  # its verification, by the declared read
    ]
    assert all(r.headers[KEY_HEADER.lower()] == API_KEY for r in connected.requests)
    assert _comments(ticket, public=True) == [SEAT_WORKFLOW["playbook"][2]["args"]["body"]]
    ticket.refresh_from_db()
    assert ticket.status == "solved"


def test_it_escalates_when_the_companys_write_answers_200_and_changes_nothing(connected, worker) -> None:
    connected.swallow = True
    worker.start()
    ticket = deliver(8102, "990001", "We hit our seat cap", "New hires cannot sign in", ["seat_cap"])

    run = wait_for_run(ticket, {"escalated"}, worker)

    action = run.actions.get(tool="raise_seat_cap")
    assert (action.status, action.verification) == ("executed", "failed")
    assert connected.accounts["nw-1042"].seat_cap == 20
    assert _comments(ticket, public=True) == []
    assert "expected seat_cap 25; read 20" in _comments(ticket, public=False)[-1]
    ticket.refresh_from_db()
    assert ticket.group_id == settings.HELPDESK_PODS["humans"]
