"""A logged-in user in neither group sees the 403 page, and no ticket data, everywhere in the console."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from console.views.common import NOT_A_MEMBER
from tests.factories import TicketFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_shows_an_outsider_nothing(login, live_server) -> None:
    ticket = TicketFactory(subject="Payroll export leaks salaries", description="Confidential details")
    UserFactory(username="olly")
    page = login("olly")

    for path in ("/", f"/tickets/{ticket.pk}/", "/workflows/", "/workflows/dashboard/", "/audit/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="No access")).to_be_visible()
        expect(page.locator("main")).to_contain_text(NOT_A_MEMBER)
        body = page.content()
        assert "Payroll export" not in body and "Confidential" not in body and ticket.external_id not in body, path
