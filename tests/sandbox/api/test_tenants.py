from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from sandbox.models import CacheReset, LogEvent, Tenant
from tests.sandbox.factories import CacheResetFactory, TenantFactory, TrialingTenantFactory

pytestmark = pytest.mark.django_db


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_it_reads_a_tenant(admin_api) -> None:
    reset_at = timezone.now() - timedelta(days=9)
    trial_end = timezone.now() + timedelta(days=3)
    TenantFactory(
        id="globex", name="Globex Logistics", plan="trial", status="trialing", trial_ends_at=trial_end,
        cache_version=3, cache_reset_at=reset_at,
    )  # fmt: skip
    response = admin_api.get("/tenants/globex")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "tenant_id", "name", "plan", "status", "trial_ends_at", "cache_version", "cache_reset_at",
    }  # fmt: skip
    assert (body["tenant_id"], body["name"], body["plan"], body["status"], body["cache_version"]) == (
        "globex", "Globex Logistics", "trial", "trialing", 3,
    )  # fmt: skip
    assert abs(_parse(body["trial_ends_at"]) - trial_end) < timedelta(milliseconds=1)
    assert abs(_parse(body["cache_reset_at"]) - reset_at) < timedelta(milliseconds=1)


def test_it_reads_null_times_as_null(admin_api) -> None:
    TenantFactory(id="acme", trial_ends_at=None, cache_reset_at=None)
    body = admin_api.get("/tenants/acme").json()

    assert body["trial_ends_at"] is None
    assert body["cache_reset_at"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/tenants/nope",
        "/tenants/nope/users/a@b.example",
        "/tenants/nope/config",
        "/tenants/nope/billing",
    ],
)
def test_it_answers_tenant_not_found_on_reads(admin_api, path: str) -> None:
    response = admin_api.get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"
    assert "nope" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tenants/nope/cache/reset", None),
        ("/tenants/nope/trial/extend", {"days": 3}),
        ("/tenants/nope/users/a@b.example/unlock", None),
    ],
)
def test_it_answers_tenant_not_found_on_writes(admin_api, path: str, body: object) -> None:
    response = admin_api.post(path, body)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_it_resets_the_cache(admin_api) -> None:
    TenantFactory(id="acme", cache_version=7, cache_reset_at=timezone.now() - timedelta(days=9))
    before = timezone.now()
    response = admin_api.post("/tenants/acme/cache/reset")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tenant_id", "cache_version", "cache_reset_at"}
    assert (body["tenant_id"], body["cache_version"]) == ("acme", 8)
    assert _parse(body["cache_reset_at"]) >= before - timedelta(milliseconds=1)
    tenant = Tenant.objects.get(pk="acme")
    assert tenant.cache_version == 8
    assert tenant.cache_reset_at >= before
    assert list(CacheReset.objects.values_list("tenant_id", "performed_at")) == [("acme", tenant.cache_reset_at)]
    assert LogEvent.objects.filter(tenant_id="acme", message__startswith="INFO cache_reset tenant=acme").count() == 1


def test_it_accepts_an_empty_object_as_the_reset_body(admin_api) -> None:
    TenantFactory(id="acme", cache_version=1)

    assert admin_api.post("/tenants/acme/cache/reset", {}).json()["cache_version"] == 2


def test_it_rate_limits_cache_resets_with_retry_after(admin_api, settings) -> None:
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 60
    tenant = TenantFactory(id="acme", cache_version=8)
    CacheResetFactory(tenant=tenant, performed_at=timezone.now() - timedelta(seconds=20))
    response = admin_api.post("/tenants/acme/cache/reset")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 38 <= int(response["Retry-After"]) <= 40
    assert Tenant.objects.get(pk="acme").cache_version == 8
    assert CacheReset.objects.count() == 1


def test_it_allows_a_reset_once_the_interval_has_passed(admin_api, settings) -> None:
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 60
    tenant = TenantFactory(id="acme", cache_version=8)
    CacheResetFactory(tenant=tenant, performed_at=timezone.now() - timedelta(seconds=61))

    assert admin_api.post("/tenants/acme/cache/reset").status_code == 200
    assert Tenant.objects.get(pk="acme").cache_version == 9


def test_it_rate_limits_per_tenant(admin_api) -> None:
    CacheResetFactory(tenant=TenantFactory(id="acme"), performed_at=timezone.now())
    TenantFactory(id="hooli")

    assert admin_api.post("/tenants/hooli/cache/reset").status_code == 200


def test_it_rate_limits_a_second_reset_in_a_row(admin_api) -> None:
    TenantFactory(id="acme", cache_version=1)

    assert admin_api.post("/tenants/acme/cache/reset").status_code == 200
    assert admin_api.post("/tenants/acme/cache/reset").status_code == 429
    assert Tenant.objects.get(pk="acme").cache_version == 2


def test_it_extends_a_trial_from_its_current_end(admin_api) -> None:
    tenant = TrialingTenantFactory(id="globex")
    previous = tenant.trial_ends_at
    response = admin_api.post("/tenants/globex/trial/extend", {"days": 7})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tenant_id", "trial_ends_at", "previous_trial_ends_at"}
    assert body["tenant_id"] == "globex"
    assert abs(_parse(body["previous_trial_ends_at"]) - previous) < timedelta(milliseconds=1)
    assert abs(_parse(body["trial_ends_at"]) - (previous + timedelta(days=7))) < timedelta(milliseconds=1)
    assert Tenant.objects.get(pk="globex").trial_ends_at == previous + timedelta(days=7)


def test_it_extends_a_trial_without_an_end_from_now(admin_api) -> None:
    TrialingTenantFactory(id="bluth", trial_ends_at=None)
    before = timezone.now()
    body = admin_api.post("/tenants/bluth/trial/extend", {"days": 14}).json()

    assert body["previous_trial_ends_at"] is None
    stored = Tenant.objects.get(pk="bluth").trial_ends_at
    assert before + timedelta(days=14) <= stored <= timezone.now() + timedelta(days=14)


@pytest.mark.parametrize("days", [0, -3, 31, 365])
def test_it_refuses_an_extension_outside_1_to_30_days(admin_api, days: int) -> None:
    tenant = TrialingTenantFactory(id="globex")
    response = admin_api.post("/tenants/globex/trial/extend", {"days": days})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_days"
    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at


@pytest.mark.parametrize("days", [1, 30])
def test_it_accepts_the_bounds_of_the_extension(admin_api, days: int) -> None:
    TrialingTenantFactory(id="globex")

    assert admin_api.post("/tenants/globex/trial/extend", {"days": days}).status_code == 200


@pytest.mark.parametrize("status", ["active", "past_due", "suspended", "canceled"])
def test_it_refuses_to_extend_a_tenant_that_is_not_trialing(admin_api, status: str) -> None:
    ended = timezone.now() - timedelta(days=30)
    TenantFactory(id="acme", status=status, trial_ends_at=ended)
    response = admin_api.post("/tenants/acme/trial/extend", {"days": 7})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "trial_not_active"
    assert status in response.json()["error"]["message"]
    assert Tenant.objects.get(pk="acme").trial_ends_at == ended
