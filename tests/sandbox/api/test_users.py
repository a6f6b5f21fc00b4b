from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from sandbox.models import LogEvent, TenantUser
from tests.sandbox.factories import LockedTenantUserFactory, TenantFactory, TenantUserFactory

pytestmark = pytest.mark.django_db


def test_it_reads_a_user(admin_api) -> None:
    locked_at = timezone.now() - timedelta(minutes=20)
    LockedTenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example", locked_at=locked_at)
    response = admin_api.get("/tenants/initech/users/ops@initech.example")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tenant_id", "email", "locked", "failed_logins", "locked_at"}
    assert (body["tenant_id"], body["email"], body["locked"], body["failed_logins"]) == (
        "initech", "ops@initech.example", True, 5,
    )  # fmt: skip
    assert abs(datetime.fromisoformat(body["locked_at"]) - locked_at) < timedelta(milliseconds=1)


def test_it_finds_a_user_whatever_the_case_of_the_email(admin_api) -> None:
    TenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example")

    assert admin_api.get("/tenants/initech/users/Ops@Initech.example").json()["email"] == "ops@initech.example"


def test_it_answers_user_not_found(admin_api) -> None:
    TenantFactory(id="initech")
    response = admin_api.get("/tenants/initech/users/ghost@initech.example")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"


def test_it_keeps_users_inside_their_tenant(admin_api) -> None:
    TenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example")
    TenantFactory(id="acme")

    assert admin_api.get("/tenants/acme/users/ops@initech.example").status_code == 404
    assert admin_api.post("/tenants/acme/users/ops@initech.example/unlock").status_code == 404


def test_it_unlocks_a_locked_user(admin_api) -> None:
    user = LockedTenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example")
    response = admin_api.post("/tenants/initech/users/ops@initech.example/unlock")

    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": "initech",
        "email": "ops@initech.example",
        "locked": False,
        "failed_logins": 0,
        "locked_at": None,
    }
    user.refresh_from_db()
    assert (user.locked, user.failed_logins, user.locked_at) == (False, 0, None)
    assert LogEvent.objects.filter(message__contains="user_unlocked tenant=initech email=ops@initech.example").exists()


def test_it_refuses_to_unlock_a_user_that_is_not_locked(admin_api) -> None:
    TenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example", failed_logins=2)
    response = admin_api.post("/tenants/initech/users/ops@initech.example/unlock")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "user_not_locked"
    assert TenantUser.objects.get(email="ops@initech.example").failed_logins == 2


def test_it_answers_user_not_found_on_unlock(admin_api) -> None:
    TenantFactory(id="initech")
    response = admin_api.post("/tenants/initech/users/ghost@initech.example/unlock")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"
