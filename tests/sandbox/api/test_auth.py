from __future__ import annotations

import pytest

from sandbox.models import IdempotencyRecord, Tenant
from tests.sandbox.conftest import BASE, auth_headers
from tests.sandbox.factories import TenantFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/tenants/acme"),
    ("post", "/tenants/acme/cache/reset"),
    ("post", "/tenants/acme/trial/extend"),
    ("get", "/tenants/acme/users/ops@acme.example"),
    ("post", "/tenants/acme/users/ops@acme.example/unlock"),
    ("get", "/tenants/acme/config"),
    ("put", "/tenants/acme/config/sso.enabled"),
    ("get", "/tenants/acme/billing"),
    ("get", "/_faults"),
    ("put", "/_faults"),
]


def _call(client, method: str, path: str, headers: dict[str, str]) -> object:
    if method == "get":
        return client.get(f"{BASE}{path}", headers=headers)
    return getattr(client, method)(f"{BASE}{path}", data="{}", content_type="application/json", headers=headers)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_it_refuses_every_endpoint_without_a_token(client, method: str, path: str) -> None:
    TenantFactory(id="acme")
    response = _call(client, method, path, {})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_it_refuses_every_endpoint_with_a_wrong_token(client, method: str, path: str) -> None:
    TenantFactory(id="acme")
    response = _call(client, method, path, auth_headers("not-the-token"))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_it_refuses_another_auth_scheme(client) -> None:
    TenantFactory(id="acme")
    response = client.get(f"{BASE}/tenants/acme", headers={"Authorization": "Basic dGVzdDp0ZXN0"})

    assert response.status_code == 401


def test_it_accepts_the_configured_token(admin_api) -> None:
    TenantFactory(id="acme")

    assert admin_api.get("/tenants/acme").status_code == 200


def test_it_refuses_everything_when_no_token_is_configured(client, settings) -> None:
    TenantFactory(id="acme")
    presented = settings.SANDBOX_ADMIN_API_TOKEN
    settings.SANDBOX_ADMIN_API_TOKEN = ""

    assert client.get(f"{BASE}/tenants/acme", headers=auth_headers(presented)).status_code == 401
    assert client.get(f"{BASE}/tenants/acme", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get(f"{BASE}/tenants/acme", headers={"Authorization": "Bearer"}).status_code == 401


def test_it_neither_acts_nor_claims_the_idempotency_key_for_an_unauthenticated_write(client) -> None:
    TenantFactory(id="acme", cache_version=4)
    response = client.post(
        f"{BASE}/tenants/acme/cache/reset",
        data="{}",
        content_type="application/json",
        headers={"Authorization": "Bearer wrong", "Idempotency-Key": "k-1"},
    )

    assert response.status_code == 401
    assert Tenant.objects.get(pk="acme").cache_version == 4
    assert not IdempotencyRecord.objects.exists()
