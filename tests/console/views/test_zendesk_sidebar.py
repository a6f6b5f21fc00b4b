"""The Zendesk sidebar app's page: Zendesk's signed JWT in, a bearer sidebar token after, the same services and
permissions as the console for approve / reject / rate, and framing allowed for Zendesk only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import time
from html.parser import HTMLParser

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django.urls import reverse

from agent.models import ProposedAction, Rating
from agentconsole.roles import ADMINS, REVIEWERS
from audit.models import AuditEvent
from console.zendesk_app import (
    NOT_A_MEMBER,
    NOT_CONFIGURED,
    SESSION_INVALID,
    SESSION_MISSING,
    TOKEN_EXPIRED,
    TOKEN_NO_EMAIL,
    USER_AMBIGUOUS,
    USER_UNKNOWN,
)
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TenantLinkFactory,
    TicketCommentFactory,
    TicketFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "zendesk-app-shared-secret-for-tests"
URL = "/zendesk/sidebar/"


@pytest.fixture(autouse=True)
def app_settings(settings) -> None:
    settings.ZENDESK_APP_SHARED_SECRET = SECRET
    settings.ZENDESK_APP_PUBLIC_KEY = ""
    settings.ZENDESK_SUBDOMAIN = "acme"
    settings.ZENDESK_APP_AUDIENCE = ""
    settings.ZENDESK_APP_FRAME_ANCESTORS = ["https://acme.zendesk.com"]


def token(email: str = "rita@example.com", *, key: object = SECRET, algorithm: str = "HS256", **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "acme.zendesk.com",
        "iat": now,
        "exp": now + 300,
        "email": email,
        "context": {"product": "support", "location": "ticket_sidebar"},
        **claims,
    }
    return jwt.encode(payload, key, algorithm=algorithm)


@pytest.fixture
def rita():
    return UserFactory(username="rita", email="rita@example.com", groups=[REVIEWERS])


@pytest.fixture
def pending() -> ProposedAction:
    ticket = TicketFactory(
        external_id="35436", subject="Locked out", tenant_link=TenantLinkFactory(tenant_id="initech")
    )
    run = AgentRunFactory(ticket=ticket, status="awaiting_approval")
    StepFactory(run=run, index=0, kind="action", tool_name="search_logs", tool_call_id="t1",
                tool_input={"query": "login_failed", "minutes": 60})  # fmt: skip
    nothing = {"ok": True, "data": {"filter_pattern": "login_failed", "count": 0, "events": []}}
    StepFactory(run=run, index=1, kind="observation", tool_name="search_logs", tool_call_id="t1", tool_output=nothing)
    action = ProposedActionFactory(
        run=run, tool="unlock_user", args={"tenant_id": "initech", "email": "ops@initech.example"}, status="pending"
    )
    ProposedActionFactory(
        run=run, tool="route_ticket", args={"pod": "identity"}, risk="helpdesk", status="executed",
        execution_result={"ok": True, "data": {"pod": "identity", "reason": "A lockout.", "pod_owns": "Sign-in."}},
    )  # fmt: skip
    return action


def _open(client: Client | None = None, **data: str):
    return (client or Client()).post(URL, {"ticket_id": "35436", **data})


def _session(response) -> str:
    return re.search(r'"Authorization": "Bearer ([^"]+)"', response.content.decode()).group(1)


def test_it_shows_the_findings_routing_and_pending_proposal_for_a_signed_token(rita, pending) -> None:
    response = _open(token=token())

    assert response.status_code == 200
    page = response.content.decode()
    assert "#35436 Locked out" in page
    assert "logs matching login_failed (last 60 min): no lines" in page
    assert "Routed to <strong>identity</strong>: A lockout." in page
    assert re.search(rf'id="sidebar-action-{pending.pk}"', page)
    assert "unlock_user" in page and "ops@initech.example" in page
    assert reverse("console:ticket-detail", args=[pending.run.ticket_id]) in page


def test_it_lets_zendesk_frame_it_and_sets_no_cookie(rita, pending) -> None:
    response = _open(token=token())

    csp = response["Content-Security-Policy"]
    assert "frame-ancestors https://acme.zendesk.com" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "X-Frame-Options" not in response
    assert response.cookies == {}
    assert response["Cache-Control"] == "no-store"


def test_it_runs_no_inline_script_or_style(rita, pending) -> None:
    class Inline(HTMLParser):
        found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            names = {name for name, _ in attrs}
            if (tag == "script" and "src" not in names) or tag == "style" or "style" in names:
                self.found.append(tag)
            self.found += [name for name in names if name.startswith("on")]

    parser = Inline()
    parser.feed(_open(token=token()).content.decode())
    assert parser.found == []


def test_it_accepts_an_rs256_token_with_the_apps_public_key(settings, rita, pending) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.ZENDESK_APP_PUBLIC_KEY = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert _open(token=token(key=pem, algorithm="RS256")).status_code == 200
    # The public key is never an HMAC secret: a token "signed" with it as HS256 (the classic algorithm confusion,
    # built by hand since PyJWT refuses to make one) is refused.
    settings.ZENDESK_APP_SHARED_SECRET = ""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(jwt.decode(token(), SECRET, algorithms=["HS256"]))
    mac = hmac.new(settings.ZENDESK_APP_PUBLIC_KEY.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    _refused(_open(token=forged), "'HS256', which is not accepted")


def _b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _refused(response, message: str) -> None:
    assert response.status_code == 403
    assert message in html.unescape(response.content.decode())
    assert "Bearer" not in response.content.decode()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: token(exp=int(time.time()) - 120), TOKEN_EXPIRED),
        (lambda: token(key="another-secret-that-is-long-enough-for-hs256"), "Signature verification failed"),
        (lambda: token(iss="evil.zendesk.com"), "issued by 'evil.zendesk.com'"),
        (lambda: token(context={"location": "nav_bar"}), "'nav_bar' location"),
        (lambda: token(email=""), TOKEN_NO_EMAIL),
        (lambda: token(email="nobody@example.com"), USER_UNKNOWN.format(email="nobody@example.com")),
        (lambda: jwt.encode({"email": "rita@example.com", "exp": int(time.time()) + 60}, SECRET), 'missing the "iat"'),
        (lambda: jwt.encode({"email": "rita@example.com", "iat": 1, "exp": 9e9}, None, algorithm="none"), "'none'"),
        (lambda: "not.a.jwt", "not valid"),
        (lambda: "", "carries no signed token"),
    ],
)
def test_it_refuses_a_bad_or_expired_token_with_403(rita, pending, make, message) -> None:
    _refused(_open(token=make()), message)
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_it_refuses_users_who_may_not_review(pending) -> None:
    UserFactory(username="olga", email="olga@example.com")
    _refused(_open(token=token("olga@example.com")), NOT_A_MEMBER)
    UserFactory(username="ivy", email="ivy@example.com", is_active=False, groups=[REVIEWERS])
    _refused(_open(token=token("ivy@example.com")), USER_UNKNOWN.format(email="ivy@example.com"))
    UserFactory(username="sam1", email="sam@example.com", groups=[REVIEWERS])
    UserFactory(username="sam2", email="SAM@example.com", groups=[ADMINS])
    _refused(_open(token=token("sam@example.com")), USER_AMBIGUOUS.format(email="sam@example.com"))


def test_it_refuses_everyone_while_the_app_is_not_configured(settings, rita) -> None:
    settings.ZENDESK_APP_SHARED_SECRET = ""
    _refused(_open(token=token()), NOT_CONFIGURED)


def test_it_checks_the_audience_when_one_is_configured(settings, rita, pending) -> None:
    settings.ZENDESK_APP_AUDIENCE = "https://acme.zendesk.com/api/v2/apps/installations/42.json"
    _refused(
        _open(token=token(aud="https://acme.zendesk.com/api/v2/apps/installations/7.json")), "Audience doesn't match"
    )
    assert _open(token=token(aud=settings.ZENDESK_APP_AUDIENCE)).status_code == 200


def test_it_approves_through_the_same_service_with_the_sidebar_token(rita, pending, reviewer) -> None:
    session = _session(_open(token=token()))
    url = reverse("console:zendesk-sidebar-approve", args=[pending.pk])
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(url, headers={"Authorization": f"Bearer {session}", "HX-Request": "true"})

    assert response.status_code == 200
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by) == ("approved", rita)
    assert AuditEvent.objects.filter(verb="action.approved", actor=rita).count() == 1
    assert "Nothing is waiting for a decision." in response.content.decode()
    again = strict.post(url, headers={"Authorization": f"Bearer {session}", "HX-Request": "true"})
    assert again.status_code == 409
    assert "already decided" in again.content.decode()


def test_it_rejects_with_a_reason_and_rates(rita, pending) -> None:
    session = _session(_open(token=token()))
    headers = {"Authorization": f"Bearer {session}", "HX-Request": "true"}
    reject = reverse("console:zendesk-sidebar-reject", args=[pending.pk])

    assert Client().post(reject, {"reason": "  "}, headers=headers).status_code == 400
    too_long = Client().post(reject, {"reason": "x" * 2001}, headers=headers)
    assert too_long.status_code == 400
    assert "at most 2000 characters" in too_long.content.decode()  # the limit, not "a reason is needed"
    pending.refresh_from_db()
    assert pending.status == "pending"
    assert Client().post(reject, {"reason": "Verify the caller first"}, headers=headers).status_code == 200
    pending.refresh_from_db()
    assert (pending.status, pending.decision_reason) == ("rejected", "Verify the caller first")

    rate = reverse("console:zendesk-sidebar-rate", args=[pending.pk])
    assert Client().post(rate, {"value": "-1", "sidebar_token": session}).status_code == 200  # without JavaScript
    assert Rating.objects.get(user=rita, action=pending).value == -1
    long_comment = Client().post(rate, {"value": "1", "comment": "x" * 2001}, headers=headers)
    assert long_comment.status_code == 400 and "at most 2000 characters" in long_comment.content.decode()
    assert Client().post(rate, {"value": "7"}, headers=headers).status_code == 400
    assert Rating.objects.get(user=rita, action=pending).value == -1  # neither changed the rating


def test_it_accepts_no_console_cookie_and_no_forged_or_stale_sidebar_token(rita, pending, reviewer, settings) -> None:
    url = reverse("console:zendesk-sidebar-approve", args=[pending.pk])
    _refused(reviewer.post(url), SESSION_MISSING)  # a logged-in console session is not enough
    _refused(Client().post(url, headers={"Authorization": "Bearer forged:token"}), SESSION_INVALID)
    session = _session(_open(token=token()))
    settings.ZENDESK_APP_SESSION_SECONDS = -1
    _refused(Client().post(url, headers={"Authorization": f"Bearer {session}"}), SESSION_INVALID)
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_it_stops_a_session_as_soon_as_the_role_is_removed(rita, pending) -> None:
    session = _session(_open(token=token()))
    rita.groups.clear()
    panel = reverse("console:zendesk-sidebar-panel", args=["35436"])
    _refused(Client().get(panel, headers={"Authorization": f"Bearer {session}"}), NOT_A_MEMBER)


def test_it_shows_a_customer_comment_that_arrived_after_the_proposal(rita, pending) -> None:
    TicketCommentFactory(ticket=pending.run.ticket, body="Never mind, I got in!")
    page = _open(token=token()).content.decode()
    assert "The customer wrote after this was proposed" in page and "Never mind, I got in!" in page


def test_it_polls_the_panel_while_the_run_is_active_and_says_when_a_ticket_is_unknown(rita, pending) -> None:
    page = _open(token=token()).content.decode()
    assert 'hx-trigger="every 3s"' in page
    unknown = _open(token=token(), ticket_id="99999").content.decode()
    assert "Agent Console has no ticket #99999 yet." in unknown


def test_it_waits_for_the_zendesk_sdk_when_no_ticket_is_named(settings, rita) -> None:
    page = Client().post(URL, {"token": token()}).content.decode()
    assert f'<script src="{settings.ZENDESK_APP_SDK_URL}" defer></script>' in page
    assert 'data-ticket-known="false"' in page
