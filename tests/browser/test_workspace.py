"""The reviewer's workspace in Debian's Chromium: finding any ticket, the shadow drafts to rate, three decisions made
with the keyboard only, two reviewers on one item, an expired session, and an approve that fails."""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import Browser, Page, expect

from agent.models import AgentRun, ProposedAction, Rating, Step
from agentconsole.roles import REVIEWERS
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.browser.conftest import PASSWORD, VIEWPORT, screenshot
from tests.factories import ProposedActionFactory, StepFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def _pending_item(subject: str) -> ProposedAction:
    step = StepFactory(
        kind=Step.Kind.ACTION,
        tool_name="extend_trial",
        tool_call_id="c1",
        run__status=AgentRun.Status.AWAITING_APPROVAL,
        run__ticket__subject=subject,
        run__ticket__tenant_link__tenant_id="globex",
    )
    return ProposedActionFactory(
        run=step.run, step=step, tool="extend_trial", tool_call_id="c1", args={"tenant_id": "globex", "days": 7}
    )


def test_it_finds_a_finished_ticket_and_rates_a_shadow_draft_from_its_saved_view(company, worker, login) -> None:
    company()  # stale-cache is autonomous (finishes alone); billing-question is shadow (drafts only)
    reviewer = UserFactory(username="rita", groups=[REVIEWERS])
    worker.start()
    done = deliver(8201, "360001", "Dashboard shows stale data", "Numbers froze at 6am", ["stale_cache"])
    shadow = deliver(8202, "360004", "Charged twice", "We were charged twice in October.", ["billing"])
    wait_for_run(done, {"completed"}, worker)
    wait_for_run(shadow, {"completed"}, worker)
    page = login("rita")

    # Find the finished ticket by its Zendesk number, from the search box in the top bar ("/" focuses it).
    page.keyboard.press("/")
    page.keyboard.type("8201")
    page.keyboard.press("Enter")
    rows = page.get_by_test_id("ticket-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("#8201 Dashboard shows stale data")
    expect(rows.first).to_contain_text("Completed")
    screenshot(page, "tickets", full_page=False)
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="#8201 Dashboard shows stale data")).to_be_visible()
    expect(page.locator("#runs .badge.run-completed")).to_be_visible()

    # The saved view of shadow drafts to rate lists the billing ticket until its draft is rated.
    page.get_by_role("link", name="Tickets").first.click()
    page.get_by_test_id("view-needs_rating").click()
    rows = page.get_by_test_id("ticket-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("#8202 Charged twice")
    rows.first.get_by_role("link").click()
    draft = page.get_by_test_id("draft-card").first
    expect(draft).to_contain_text("Billing context")
    draft.scroll_into_view_if_needed()
    screenshot(page, "ticket-shadow", full_page=False)
    draft.get_by_label("Rating comment").fill("Clear summary")
    draft.get_by_label("Rating comment").press("Enter")  # Enter in a comment never picks a thumb
    page.wait_for_timeout(300)
    assert not Rating.objects.exists()
    draft.get_by_title("Thumbs up").click()
    expect(draft).to_contain_text("You rated it thumbs up.")
    rating = Rating.objects.get(user=reviewer)
    assert (rating.value, rating.comment) == (1, "Clear summary")

    page.get_by_role("link", name="Tickets").first.click()
    page.get_by_test_id("view-needs_rating").click()
    expect(page.get_by_test_id("no-tickets")).to_be_visible()


def test_it_works_three_pending_items_with_the_keyboard_only(company, worker, login) -> None:
    company()  # trial-extension and account-lockout are triage workflows: their writes wait for a reviewer
    UserFactory(username="rita", groups=[REVIEWERS])
    worker.start()
    tickets = [
        deliver(8301, "360002", "Extend our trial?", "One more week please", ["trial_extension"]),
        deliver(8302, "360003", "Locked out", "I am locked out as ops@initech.example", ["locked_out"]),
        # Globex again: the trial runbook proposes an extension only for a tenant still trialing.
        deliver(8303, "360002", "Trial extension please", "Need more time", ["trial_extension"]),
    ]
    for ticket in tickets:
        wait_for_run(ticket, {"awaiting_approval"}, worker)
    page = login("rita")
    expect(page.get_by_test_id("counts")).to_contain_text("3 pending")
    screenshot(page, "queue")

    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#shortcuts")).to_contain_text("Respond with feedback")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_hidden()

    decisions = []
    for answer in ("approve", "respond", "reject"):
        page.keyboard.press("n")
        card = page.locator("[data-decision]").first
        expect(card).to_be_visible()
        expect(page.get_by_test_id("claim")).to_contain_text("Claimed by rita (you)")
        expect(card.get_by_test_id("what-next")).to_contain_text("What happens next")
        if answer == "approve":
            expect(card.get_by_test_id("state-diff")).to_be_visible(timeout=30_000)  # read by a worker
            screenshot(page, "ticket", full_page=False)
            page.keyboard.press("a")
        elif answer == "respond":
            page.keyboard.press("f")
            page.keyboard.type("Seven days is fine, but note the plan first")
            page.keyboard.press("Enter")
        else:
            page.keyboard.press("r")
            page.keyboard.type("Sales must approve this")
            page.keyboard.press("Enter")
        expect(page.get_by_test_id("decided")).to_be_visible()
        decisions.append(answer)
    page.keyboard.press("n")
    expect(page.get_by_role("heading", name="Nothing pending")).to_be_visible()

    decided = sorted(ProposedAction.objects.filter(decided_by__username="rita").values_list("status", flat=True))
    assert decisions == ["approve", "respond", "reject"]
    # The approved write ran (executed, or failed if the Admin API refused it); the others never ran.
    assert len(decided) == 3 and decided.count("responded") == 1 and decided.count("rejected") == 1
    responded = ProposedAction.objects.get(status="responded")
    assert responded.decision_reason == "Seven days is fine, but note the plan first"
    assert wait_for_run(responded.run.ticket, {"escalated"}, worker)  # the offline engine cannot adapt: it escalates
    note = responded.run.ticket.comments.filter(public=False).last()
    assert "Seven days is fine, but note the plan first" in note.body


def test_it_shows_two_reviewers_on_one_item_who_holds_it(browser: Browser, live_server, login, broker) -> None:
    action = _pending_item("Please extend our trial")
    UserFactory(username="rita", groups=[REVIEWERS])
    UserFactory(username="sam", groups=[REVIEWERS])
    rita = login("rita")
    rita.keyboard.press("n")  # serves and claims the item
    expect(rita.get_by_test_id("claim")).to_contain_text("Claimed by rita (you)")

    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    sam = context.new_page()
    _log_in(sam, live_server.url, "sam", f"/tickets/{action.run.ticket_id}/")
    expect(sam.get_by_test_id("claim")).to_contain_text("Claimed by rita")
    expect(sam.get_by_test_id("claim")).to_contain_text("here now")
    sam.keyboard.press("a")  # sam tries anyway: refused, and the card says why
    expect(sam.get_by_test_id("card-error")).to_contain_text("rita has claimed this ticket")
    expect(rita.get_by_test_id("others")).to_contain_text("Also here: sam", timeout=15_000)
    action.refresh_from_db()
    assert action.status == "pending"
    context.close()


def test_it_sends_an_expired_session_to_the_login_page(login, live_server) -> None:
    action = _pending_item("Trial, again")
    UserFactory(username="rita", groups=[REVIEWERS])
    page = login("rita", path=f"/tickets/{action.run.ticket_id}/")
    card = page.locator(f"#action-{action.pk}")
    expect(card).to_be_visible()
    Session.objects.all().delete()

    # The page's next background request (the live transcript, the presence beat or a click, whichever comes
    # first) meets the expired session and the whole page goes to the login form, coming back here after it.
    expect(page).to_have_url(
        re.compile(rf"/accounts/login/\?next=%2Ftickets%2F{action.run.ticket_id}%2F$"), timeout=15_000
    )
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.locator("[data-decision]").count() == 0  # no login form swapped into the card
    action.refresh_from_db()
    assert action.status == "pending"


def test_it_shows_why_an_approve_failed(login, live_server, broker) -> None:
    action = _pending_item("Trial, please")
    UserFactory(username="rita", groups=[REVIEWERS])
    page = login("rita", path=f"/tickets/{action.run.ticket_id}/")
    card = page.locator(f"#action-{action.pk}")

    # The network fails: a message says so, and nothing was decided.
    page.route("**/approve/", lambda route: route.abort())
    card.get_by_role("button", name="Approve & run").click()
    expect(page.get_by_test_id("toast")).to_contain_text("Could not reach the server")
    page.unroute("**/approve/")
    action.refresh_from_db()
    assert action.status == "pending"

    # Someone else decided it meanwhile: this page was stale, and the card says so and shows the decision.
    ProposedAction.objects.filter(pk=action.pk).update(status="rejected", decision_reason="Not now")
    card.get_by_role("button", name="Approve & run").click()
    expect(card.get_by_test_id("card-error")).to_contain_text("This page was out of date")
    expect(card.get_by_test_id("action-status")).to_have_text("Rejected")
    action.refresh_from_db()
    assert action.status == "rejected"


def test_it_fits_a_phone_screen(login, live_server, page: Page) -> None:
    action = _pending_item("Can we get two more weeks of trial?")
    UserFactory(username="rita", groups=[REVIEWERS])
    login("rita")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/tickets/{action.run.ticket_id}/")
    card = page.locator(f"#action-{action.pk}")
    expect(card).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width}px wide"
    box = card.bounding_box()
    assert box is not None and box["width"] <= 390
    screenshot(page, "ticket-mobile-390", full_page=False)
    page.goto(f"{live_server.url}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "queue-mobile-390", full_page=False)


def _log_in(page: Page, base: str, username: str, path: str) -> None:
    page.goto(f"{base}/accounts/login/?next={path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
