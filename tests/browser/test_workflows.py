"""Promoting a workflow in the browser: admins can, with a reason (and an override while criteria are unmet);
reviewers see the evidence but no form, and a forged POST is refused."""

from __future__ import annotations

import pytest
from django.utils.html import escape
from playwright.sync_api import expect

from agent.models import Workflow
from agent.permissions import NOT_AN_ADMIN
from agentconsole.roles import ADMINS, REVIEWERS
from audit.models import AuditEvent
from tests.browser.conftest import screenshot
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_lets_an_admin_promote_a_workflow_with_an_override(company, login) -> None:
    company()  # trial-extension is a triage workflow with no evidence yet
    UserFactory(username="ada", groups=[ADMINS])
    page = login("ada", path="/workflows/")

    card = page.locator("#workflow-trial-extension")
    expect(card.get_by_test_id("phase")).to_have_text("Triage")
    screenshot(page, "workflows")
    card.get_by_label("Move to").select_option("autonomous")
    card.get_by_label("Reason").fill("Sales signed off on two-week extensions")
    card.get_by_role("button", name="Change phase").click()

    # Criteria unmet and no override: refused, the card lists what is missing, nothing changes.
    card = page.locator("#workflow-trial-extension")
    expect(card.get_by_role("alert")).to_be_visible()
    expect(card.get_by_test_id("phase")).to_have_text("Triage")
    assert Workflow.objects.get(slug="trial-extension").phase == "triage"

    card.get_by_label("Move to").select_option("autonomous")
    card.get_by_label("Reason").fill("Sales signed off on two-week extensions")
    card.get_by_label("Override unmet criteria").check()
    card.get_by_role("button", name="Change phase").click()

    card = page.locator("#workflow-trial-extension")
    expect(card.get_by_test_id("phase")).to_have_text("Autonomous")
    expect(card.get_by_role("status")).to_have_text("Trial extension is now in the Autonomous phase.")
    assert Workflow.objects.get(slug="trial-extension").phase == "autonomous"
    assert AuditEvent.objects.filter(actor__username="ada", verb__startswith="workflow.").exists()


def test_it_shows_a_reviewer_no_form_and_refuses_a_forged_post(company, login, live_server) -> None:
    company()
    UserFactory(username="rita", groups=[REVIEWERS])
    page = login("rita", path="/workflows/")

    card = page.locator("#workflow-trial-extension")
    expect(card.get_by_test_id("phase")).to_have_text("Triage")
    expect(card.get_by_test_id("reviewed")).to_be_visible()
    expect(page.locator("form.phase-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Change phase")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop autonomy")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/workflows/trial-extension/phase/",
        form={"phase": "autonomous", "reason": "forged", "override": "on"},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status == 403
    assert escape(NOT_AN_ADMIN) in response.text()
    assert Workflow.objects.get(slug="trial-extension").phase == "triage"
