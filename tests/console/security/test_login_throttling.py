"""Both login forms — the console's and the Django admin's — slow a guesser down: after LOGIN_FAILURE_LIMIT wrong
passwords for one user from one address, that pair is refused (429) for LOGIN_LOCKOUT_MINUTES, even with the
right password."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FORMS = {"console": "/accounts/login/", "admin": "/admin/login/"}


@pytest.fixture
def staff():
    return UserFactory(username="ops", is_staff=True, is_superuser=True)


def _login(url: str, username: str, password: str, client: Client | None = None, address: str = "10.0.0.1"):
    return (client or Client()).post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("form", FORMS)
def test_it_locks_out_a_user_and_address_after_too_many_failures(form, staff) -> None:
    url = FORMS[form]
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(url, "ops", "wrong").status_code == 200  # the form again, with its error

    locked = _login(url, "ops", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    right_password = _login(url, "ops", "pass-word-123")
    assert right_password.status_code == 429
    assert "_auth_user_id" not in right_password.client.session
    assert AccessAttempt.objects.get(username="ops").failures_since_start >= settings.AXES_FAILURE_LIMIT


@pytest.mark.parametrize("form", FORMS)
def test_it_lets_the_same_user_in_from_elsewhere_and_others_from_here(form, staff) -> None:
    url = FORMS[form]
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(url, "ops", "wrong")
    UserFactory(username="someone-else", is_staff=True)

    assert _login(url, "ops", "pass-word-123", address="10.0.0.2").status_code == 302
    assert _login(url, "someone-else", "pass-word-123").status_code == 302


def test_it_forgets_failures_after_a_success(staff) -> None:
    url = FORMS["console"]
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(url, "ops", "wrong")
    assert _login(url, "ops", "pass-word-123").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(url, "ops", "wrong").status_code == 200


def test_it_counts_the_address_the_tls_proxy_saw_not_the_proxys_own(staff, settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    url = FORMS["console"]

    def attempt(client_address: str, password: str = "wrong"):  # noqa: S107 - a test password
        # The client may send any X-Forwarded-For; the proxy appends the address it really saw.
        return Client().post(
            url,
            {"username": "ops", "password": password},
            REMOTE_ADDR="10.9.9.9",
            HTTP_X_FORWARDED_FOR=f"1.2.3.4, {client_address}",
        )

    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt("203.0.113.7")
    assert attempt("203.0.113.7", "pass-word-123").status_code == 429
    assert attempt("198.51.100.8", "pass-word-123").status_code == 302  # another client behind the same proxy
