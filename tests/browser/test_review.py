"""A reviewer's day in the browser: the queue, a ticket's live transcript, approving, rejecting and rating."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from agent.models import ProposedAction, Rating
from agentconsole.roles import REVIEWERS
from sandbox.models import TenantUser
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.browser.conftest import screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

REPLY = "Hello, your account ops@initech.example is unlocked; you can log in again."


def _card(page: Page, action: ProposedAction):
    return page.locator(f"#action-{action.pk}")


def test_it_approves_from_the_queue_and_watches_the_run_verify_and_reply(company, worker, login) -> None:
    company()  # account-lockout is a triage workflow
    reviewer = UserFactory(username="rita", groups=[REVIEWERS])
    ticket = deliver(
        8101, "360003", "Locked out", "I am locked out as ops@initech.example", ["locked_out"], no_worker=True
    )
    page = login(reviewer.username, path=f"/tickets/{ticket.pk}/")

    # The run is queued and no worker is up yet: the page shows no step, and polls.
    runs = page.locator("#runs")
    expect(runs).to_have_attribute("data-live", "true")
    expect(runs.locator("ol.timeline")).to_contain_text("No steps yet.")
    worker.start()
    # No reload: the transcript grows by itself until the write waits for a reviewer.
    expect(page.locator("#live").get_by_role("button", name="Approve & run — real action")).to_be_visible(
        timeout=60_000
    )
    expect(runs.locator("code.tool", has_text="run_sql").first).to_be_visible()
    expect(runs.locator("code.tool", has_text="route_ticket").first).to_be_visible()
    run = wait_for_run(ticket, {"awaiting_approval"}, worker)
    action = run.actions.get(tool="unlock_user")

    page.get_by_role("link", name="Queue").first.click()
    pending = page.locator("table.list").first.locator("tr", has_text="unlock_user")
    expect(pending).to_contain_text("#8101 Locked out")
    expect(pending).to_contain_text("Triage")
    screenshot(page, "queue")
    pending.get_by_role("link", name="#8101 Locked out").click()

    expect(page).to_have_url(re.compile(rf"/tickets/{ticket.pk}/"))
    card = _card(page, action)
    expect(card).to_contain_text("Real action")
    expect(card).to_contain_text("Awaiting decision")
    steps = page.locator("#runs ol.timeline > li")
    before = steps.count()
    assert before > 0
    card.scroll_into_view_if_needed()
    screenshot(page, "ticket", full_page=False)

    card.get_by_role("button", name="Approve & run — real action").click()

    # No reload from here on: the runs section polls while the run is active and grows by itself.
    expect(card.get_by_test_id("verification")).to_have_text(
        "✔ Verification passed — the change was read back", timeout=60_000
    )
    expect(card).to_contain_text("Approved by rita")
    expect(page.locator("#runs code.tool", has_text="reply_to_customer").first).to_be_visible(timeout=60_000)
    expect(page.locator("#runs")).to_have_attribute("data-live", "false", timeout=60_000)
    assert steps.count() > before
    # The poll sent only the entries the page lacked and appended them: a fresh load shows exactly the same lines.
    grown = steps.all_inner_texts()
    page.reload()
    expect(steps).to_have_count(len(grown))
    assert steps.all_inner_texts() == grown

    run.refresh_from_db()
    action.refresh_from_db()
    assert (run.status, action.status, action.verification, action.decided_by) == (
        "completed",
        "executed",
        "passed",
        reviewer,
    )
    assert not TenantUser.objects.get(tenant_id="initech", email="ops@initech.example").locked
    page.reload()
    public = page.locator("article.comment-public")
    expect(public).to_contain_text("Public — the customer sees this")
    expect(public).to_contain_text(REPLY)
    card = _card(page, action)
    card.scroll_into_view_if_needed()
    screenshot(page, "ticket-resolved", full_page=False)

    # A stale-cache ticket resolves alone (autonomous phase), so the dashboard has both kinds to show.
    alone = deliver(8104, "360001", "Dashboard shows stale data", "Numbers froze at 6am", ["stale_cache"])
    wait_for_run(alone, {"completed"}, worker)
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("main")).to_contain_text("1 of 2 completed tickets")
    screenshot(page, "dashboard")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_test_id("event").filter(has_text="rita").first).to_be_visible()
    screenshot(page, "audit", full_page=False)


def test_it_rejects_with_a_reason_the_run_then_escalates(company, worker, login) -> None:
    company()  # trial-extension is a triage workflow
    UserFactory(username="rita", groups=[REVIEWERS])
    worker.start()
    ticket = deliver(8102, "360002", "Extend our trial?", "One more week please", ["trial_extension"])
    run = wait_for_run(ticket, {"awaiting_approval"}, worker)
    action = run.actions.get(tool="extend_trial")
    page = login("rita", path=f"/tickets/{ticket.pk}/")

    card = _card(page, action)
    card.get_by_label("Reason (the agent reads it)").fill("Sales must approve this")
    card.get_by_role("button", name="Reject").click()

    expect(card).to_contain_text("Rejected by rita")
    expect(card).to_contain_text("“Sales must approve this”")
    expect(page.locator("#runs .badge.run-escalated")).to_be_visible(timeout=60_000)
    action.refresh_from_db()
    assert (action.status, action.decision_reason) == ("rejected", "Sales must approve this")
    run = wait_for_run(ticket, {"escalated"}, worker)
    note = ticket.comments.filter(public=False, author_kind="agent").last()
    assert "Sales must approve this" in note.body
    assert not ticket.comments.filter(public=True).exists()


def test_it_rates_a_dry_run_and_the_rating_persists(company, worker, login) -> None:
    company()  # config-patch is a shadow workflow: every call is a dry run
    reviewer = UserFactory(username="rita", groups=[REVIEWERS])
    worker.start()
    ticket = deliver(8103, "360006", "Terraform runs fail", "Error acquiring the state lock", ["config_issue"])
    run = wait_for_run(ticket, {"completed"}, worker)
    action = run.actions.get(tool="apply_config_patch")
    page = login("rita", path=f"/tickets/{ticket.pk}/")

    card = _card(page, action)
    expect(card).to_contain_text("Dry run — never executed")
    screenshot(page, "ticket-shadow")
    card.get_by_label("Rating comment").fill("Right patch, but check the lock owner first")
    card.get_by_title("Thumbs down").click()
    expect(card).to_contain_text("You rated it thumbs down.")

    rating = Rating.objects.get(user=reviewer, action=action)
    assert (rating.value, rating.comment) == (-1, "Right patch, but check the lock owner first")

    page.reload()
    card = _card(page, action)
    expect(card.get_by_label("Rating comment")).to_have_value("Right patch, but check the lock owner first")
    card.get_by_title("Thumbs up").click()
    expect(card).to_contain_text("You rated it thumbs up.")
    rating.refresh_from_db()
    assert rating.value == 1
    assert Rating.objects.filter(action=action).count() == 1
