from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.sites import site
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from agent.models import ProposedAction
from audit.models import AuditEvent
from console.admin import ApiTokenAdmin
from console.auth import NOT_A_MEMBER, TOKEN_INVALID, api_token_issue, token_hash
from console.management.commands.api_token_issue import UNKNOWN_USER
from console.models import ApiToken

pytestmark = pytest.mark.django_db

CSRF_SECRET = "a" * 32  # Django accepts an unmasked 32-character secret as both cookie and header


def _bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def test_it_issues_a_token_printed_once_and_stored_only_as_its_hash(reviewer_user) -> None:
    out, err = StringIO(), StringIO()
    call_command("api_token_issue", user="reviewer", name="nightly report", stdout=out, stderr=err)

    token = out.getvalue().strip()
    assert token.startswith("ac_")
    assert len(token) > 40
    api_token = ApiToken.objects.get()
    assert (api_token.user, api_token.name, api_token.prefix) == (reviewer_user, "nightly report", token[:8])
    assert api_token.token_hash == token_hash(token)
    assert token not in err.getvalue()
    assert not ApiToken.objects.filter(token_hash=token).exists()
    assert AuditEvent.objects.filter(verb="api_token.issued", object_id=str(api_token.pk)).exists()
    assert _bearer(token).get("/api/tickets").status_code == 200


def test_it_refuses_to_issue_a_token_for_an_unknown_user(db) -> None:
    with pytest.raises(CommandError, match=UNKNOWN_USER.format(username="nobody")):
        call_command("api_token_issue", user="nobody", name="x", stdout=StringIO())
    assert not ApiToken.objects.exists()


def test_it_answers_401_to_an_unknown_token(world) -> None:
    response = _bearer("ac_not-a-token").get("/api/tickets")

    assert response.status_code == 401
    assert response.json() == {"detail": TOKEN_INVALID}


def test_it_answers_401_to_a_revoked_token_even_beside_a_valid_session(reviewer, reviewer_user) -> None:
    api_token, token = api_token_issue(user=reviewer_user, name="old")
    assert _bearer(token).get("/api/tickets").status_code == 200
    api_token.revoked_at = timezone.now()
    api_token.save()

    assert _bearer(token).get("/api/tickets").status_code == 401
    # A stale token is reported, not silently replaced by the session's identity.
    response = reviewer.get("/api/tickets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert reviewer.get("/api/tickets").status_code == 200


def test_it_refuses_the_token_of_a_deactivated_user(reviewer_user) -> None:
    _, token = api_token_issue(user=reviewer_user, name="script")
    reviewer_user.is_active = False
    reviewer_user.save()

    assert _bearer(token).get("/api/tickets").status_code == 401


def test_it_answers_403_naming_the_groups_to_a_token_of_an_outsider(outsider_token) -> None:
    response = outsider_token.get("/api/tickets")

    assert response.status_code == 403
    assert response.json() == {"detail": NOT_A_MEMBER}


def test_it_records_last_use_at_most_once_a_minute(reviewer_user) -> None:
    api_token, token = api_token_issue(user=reviewer_user, name="script")
    client = _bearer(token)
    client.get("/api/tickets")
    api_token.refresh_from_db()
    first = api_token.last_used_at
    assert first is not None

    client.get("/api/tickets")
    api_token.refresh_from_db()
    assert api_token.last_used_at == first

    ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/tickets")
    api_token.refresh_from_db()
    assert api_token.last_used_at > first


def test_it_revokes_tokens_from_the_admin_and_shows_no_way_to_add_one(admin_user, reviewer_user) -> None:
    api_token, token = api_token_issue(user=reviewer_user, name="script")
    model_admin = ApiTokenAdmin(ApiToken, site)
    request = RequestFactory().post("/admin/console/apitoken/")
    request.user = admin_user
    request._messages = type("Messages", (), {"add": lambda *args, **kwargs: None})()

    model_admin.revoke(request, ApiToken.objects.filter(pk=api_token.pk))

    api_token.refresh_from_db()
    assert api_token.revoked_at is not None
    assert AuditEvent.objects.filter(verb="api_token.revoked", actor=admin_user).count() == 1
    assert _bearer(token).get("/api/tickets").status_code == 401
    assert model_admin.has_add_permission(request) is False
    assert "token_hash" in model_admin.get_readonly_fields(request, api_token)


def _csrf_session(user: object) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF_SECRET
    return client


def test_it_refuses_a_session_post_without_the_csrf_token(world, reviewer_user) -> None:
    client = _csrf_session(reviewer_user)

    response = client.post(f"/api/actions/{world.action.pk}/reject", {"reason": "No."}, content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    world.action.refresh_from_db()
    assert world.action.status == ProposedAction.Status.PENDING


def test_it_accepts_a_session_post_with_the_csrf_token(world, reviewer_user) -> None:
    client = _csrf_session(reviewer_user)

    response = client.post(
        f"/api/actions/{world.action.pk}/reject",
        {"reason": "No."},
        content_type="application/json",
        headers={"X-CSRFToken": CSRF_SECRET},
    )

    assert response.status_code == 200
    world.action.refresh_from_db()
    assert world.action.status == ProposedAction.Status.REJECTED


def test_it_needs_no_csrf_token_with_an_api_token(world, reviewer_user) -> None:
    _, token = api_token_issue(user=reviewer_user, name="script")
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})

    response = client.post(f"/api/actions/{world.action.pk}/reject", {"reason": "No."}, content_type="application/json")

    assert response.status_code == 200


def test_it_answers_401_not_a_csrf_error_to_a_post_without_any_credentials(world) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(f"/api/actions/{world.action.pk}/reject", {"reason": "No."}, content_type="application/json")

    assert response.status_code == 401
