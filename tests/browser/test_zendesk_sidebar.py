"""The Zendesk sidebar app in Chromium: a stand-in of Zendesk's agent page on another site (localhost, while the
console is 127.0.0.1) POSTs the signed token into an iframe, as Zendesk does; the reviewer approves there; a
real worker executes the write once. No cookie is set or needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from playwright.sync_api import Page, expect

from agent.models import ProposedAction
from agentconsole.roles import REVIEWERS
from audit.models import AuditEvent
from sandbox.models import TenantUser
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.browser.conftest import SCREENSHOTS_DIR
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SECRET = "browser-test-zendesk-app-shared-secret"
OUTER = """<!doctype html><title>Zendesk agent workspace (stand-in)</title>
<form id="zaf" method="post" action="{action}" target="sidebar">
<input type="hidden" name="token" value="{token}"></form>
<iframe name="sidebar" id="sidebar" title="Agent Console" style="width:360px;height:760px"></iframe>
<script>document.getElementById("zaf").submit();</script>"""


class Zendesk:
    """Serves the stand-in agent page, which frames the console's sidebar the way Zendesk's signed URLs do."""

    def __init__(self) -> None:
        self.html = ""
        self.url = ""


@pytest.fixture
def zendesk_page() -> Iterator[Zendesk]:
    zendesk = Zendesk()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = zendesk.html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    zendesk.url = f"http://localhost:{server.server_address[1]}"  # another site than the console's 127.0.0.1
    yield zendesk
    server.shutdown()
    server.server_close()


def _token(email: str, **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": "acme.zendesk.com", "iat": now, "exp": now + 300, "email": email, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def _open(page: Page, zendesk: Zendesk, live_url: str, token: str, ticket_id: str) -> None:
    action = f"{live_url}/zendesk/sidebar/?origin=https://acme.zendesk.com&app_guid=app-1&ticket_id={ticket_id}"
    zendesk.html = OUTER.format(action=action, token=token)
    page.goto(zendesk.url)


def test_it_approves_from_the_sidebar_inside_zendesk_and_the_write_runs_once(
    company, worker, live_server, page: Page, zendesk_page: Zendesk, settings
) -> None:
    settings.ZENDESK_APP_SHARED_SECRET = SECRET
    settings.ZENDESK_SUBDOMAIN = "acme"
    settings.ZENDESK_APP_FRAME_ANCESTORS = [zendesk_page.url]
    company()  # account-lockout is a triage workflow
    rita = UserFactory(username="rita", email="rita@example.com", groups=[REVIEWERS])
    worker.start()
    ticket = deliver(8201, "360003", "Locked out", "I get 'account locked' every time.", ["locked_out"])
    run = wait_for_run(ticket, {"awaiting_approval"}, worker)
    action = run.actions.get(tool="unlock_user")

    with page.expect_response(lambda r: "/zendesk/sidebar/" in r.url) as first:
        _open(page, zendesk_page, live_server.url, _token("rita@example.com"), "8201")
    assert first.value.status == 200
    sidebar = page.frame_locator("#sidebar")
    proposal = sidebar.locator(f"#sidebar-action-{action.pk}")
    expect(proposal).to_contain_text("unlock_user")
    expect(proposal).to_contain_text("ops@initech.example")
    expect(sidebar.get_by_test_id("findings")).to_contain_text("support_tenant_users: 1 row")
    expect(sidebar.get_by_test_id("routing")).to_contain_text("identity")
    if SCREENSHOTS_DIR:
        page.locator("#sidebar").screenshot(path=str(Path(SCREENSHOTS_DIR) / "zendesk-sidebar.png"))

    proposal.get_by_role("button", name="Approve & run").click()

    expect(sidebar.get_by_test_id("nothing-pending")).to_be_visible()
    # The panel polls while the run works, and shows the write verified once the worker is done.
    expect(sidebar.get_by_test_id("decided").filter(has_text="unlock_user")).to_contain_text("verified", timeout=60_000)
    run = wait_for_run(ticket, {"completed"}, worker)
    action.refresh_from_db()
    assert (action.status, action.verification, action.decided_by) == ("executed", "passed", rita)
    assert run.actions.filter(tool="unlock_user").count() == 1
    assert AuditEvent.objects.filter(verb="action.executed", object_id=str(action.pk)).count() == 1
    assert not TenantUser.objects.get(tenant_id="initech", email="ops@initech.example").locked
    assert page.context.cookies() == []  # nothing was needed from the browser's cookie jar
    assert ProposedAction.objects.filter(run=run, status="pending").count() == 0


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: _token("rita@example.com", exp=int(time.time()) - 600), id="expired"),
        pytest.param(lambda: _token("rita@example.com")[:-4] + "AAAA", id="bad-signature"),
    ],
)
def test_it_answers_a_bad_or_expired_token_with_403_inside_the_frame(
    live_server, page: Page, zendesk_page: Zendesk, settings, token
) -> None:
    settings.ZENDESK_APP_SHARED_SECRET = SECRET
    settings.ZENDESK_APP_FRAME_ANCESTORS = [zendesk_page.url]
    UserFactory(username="rita", email="rita@example.com", groups=[REVIEWERS])

    with page.expect_response(lambda r: "/zendesk/sidebar/" in r.url) as first:
        _open(page, zendesk_page, live_server.url, token(), "8201")

    assert first.value.status == 403
    expect(page.frame_locator("#sidebar").get_by_test_id("denied")).to_be_visible()
    expect(page.frame_locator("#sidebar").get_by_role("button")).to_have_count(0)
