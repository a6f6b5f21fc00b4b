"""Proof before promotion in the browser: an admin replays a workflow's past tickets from the workflows page and
watches the replay's progress and its side-by-side result (a real Celery worker runs both the tickets and the
replay); the knowledge-gaps page groups what the agent could not work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agentconsole.roles import ADMINS
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.browser.conftest import screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_it_replays_past_tickets_from_the_workflows_page_and_shows_the_gaps(company, worker, login) -> None:
    company()  # stale-cache is autonomous: its ticket is resolved by the agent alone
    worker.start()
    UserFactory(username="ada", groups=[ADMINS])
    cache = deliver(8301, "360001", "Dashboard shows stale data", "Our numbers froze at 6am.", ["stale_cache"])
    unmatched = deliver(8302, "360005", "Export our audit log to S3?", "Nightly, for compliance.", [])
    assert wait_for_run(cache, {"completed", "escalated", "failed"}, worker).status == "completed"
    wait_for_run(unmatched, {"completed", "escalated", "failed"}, worker)

    page = login("ada", path="/workflows/")
    page.locator("#workflow-stale-cache").get_by_role("button", name="Replay past tickets").click()

    expect(page).to_have_url(re.compile(r"/workflows/replays/\d+/$"))
    status = page.get_by_test_id("replay-status")
    expect(status.locator("progress")).to_be_visible()
    expect(status).to_contain_text("Done", timeout=30_000)  # no reload: the block polls itself while it works
    expect(page.get_by_test_id("replay-progress")).to_have_text("1 of 1 tickets")
    row = page.get_by_test_id("replay-item")
    expect(row).to_contain_text("#8301")
    expect(row.locator("td").nth(1)).to_contain_text("reset_tenant_cache")  # the original run, beside
    expect(row.locator("td").nth(2)).to_contain_text("would be sent; original: ran alone, verification passed")
    expect(row.get_by_test_id("verdict")).to_contain_text("Same as the original")
    screenshot(page, "replay")

    page.get_by_role("link", name="Knowledge gaps").click()
    gap = page.get_by_test_id("gap").filter(has_text="No matching workflow")
    expect(gap).to_contain_text("#8302")
    expect(gap.get_by_test_id("gap-count")).to_have_text("1")
