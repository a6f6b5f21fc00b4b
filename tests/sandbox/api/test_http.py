"""The Admin API over real HTTP (pytest-django's live_server), as the console's client will reach it."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from sandbox.models import Tenant
from tests.sandbox.conftest import BASE
from tests.sandbox.factories import TenantFactory


@pytest.mark.django_db(transaction=True)
def test_it_answers_over_real_http_with_idempotent_replays(live_server) -> None:
    TenantFactory(id="acme", cache_version=7)
    headers = {"Authorization": f"Bearer {settings.SANDBOX_ADMIN_API_TOKEN}", "Idempotency-Key": "http-1"}
    with httpx.Client(base_url=f"{live_server.url}{BASE}", timeout=10) as http:
        read = http.get("/tenants/acme", headers=headers)
        first = http.post("/tenants/acme/cache/reset", headers=headers)
        again = http.post("/tenants/acme/cache/reset", headers=headers)
        limited = http.post("/tenants/acme/cache/reset", headers={**headers, "Idempotency-Key": "http-2"})
        refused = http.get("/tenants/acme")

    assert read.status_code == 200
    assert read.json()["cache_version"] == 7
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert Tenant.objects.get(pk="acme").cache_version == 8
