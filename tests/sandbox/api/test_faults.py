from __future__ import annotations

import time

import pytest

from sandbox.models import CacheReset, FaultSwitch, IdempotencyRecord, LogEvent, Tenant, TenantConfig, TenantUser
from tests.sandbox.factories import LockedTenantUserFactory, TenantConfigFactory, TenantFactory, TrialingTenantFactory

pytestmark = pytest.mark.django_db


def test_it_injects_errors_at_the_configured_rate_and_status(admin_api, set_faults) -> None:
    TenantFactory(id="acme", cache_version=3)
    set_faults(error_rate=1.0, error_status=502)
    read = admin_api.get("/tenants/acme")
    write = admin_api.post("/tenants/acme/cache/reset")

    assert (read.status_code, write.status_code) == (502, 502)
    assert read.json()["error"]["code"] == write.json()["error"]["code"] == "injected_fault"
    assert Tenant.objects.get(pk="acme").cache_version == 3
    assert not CacheReset.objects.exists()


def test_it_injects_no_errors_at_rate_zero(admin_api, set_faults) -> None:
    TenantFactory(id="acme")
    set_faults(error_rate=0.0, error_status=502)

    assert all(admin_api.get("/tenants/acme").status_code == 200 for _ in range(20))


def test_it_adds_the_configured_latency(admin_api, set_faults) -> None:
    TenantFactory(id="acme")
    set_faults(latency_ms=300)
    started = time.monotonic()
    response = admin_api.get("/tenants/acme")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_it_wraps_successful_bodies_when_the_shape_changed(admin_api, set_faults) -> None:
    TenantFactory(id="acme", cache_version=5)
    set_faults(changed_shape=True)
    read = admin_api.get("/tenants/acme")
    write = admin_api.post("/tenants/acme/cache/reset", key="reset-1")
    replay = admin_api.post("/tenants/acme/cache/reset", key="reset-1")

    assert read.status_code == 200
    assert set(read.json()) == {"data", "meta"}
    assert read.json()["meta"] == {"api_version": "2"}
    assert read.json()["data"]["tenant_id"] == "acme"
    assert read.json()["data"]["cache_version"] == 5
    assert write.json()["data"]["cache_version"] == 6
    assert replay.json() == write.json()
    assert replay["Idempotent-Replayed"] == "true"


def test_it_leaves_errors_in_their_shape_when_the_shape_changed(admin_api, set_faults) -> None:
    set_faults(changed_shape=True)
    response = admin_api.get("/tenants/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_it_answers_swallowed_writes_as_successes_that_change_nothing(admin_api, set_faults) -> None:
    TenantFactory(id="acme", cache_version=5)
    set_faults(swallow_writes=True)
    response = admin_api.post("/tenants/acme/cache/reset", key="reset-1")

    assert response.status_code == 200
    assert response.json()["cache_version"] == 6
    assert Tenant.objects.get(pk="acme").cache_version == 5
    assert not CacheReset.objects.exists()
    assert not LogEvent.objects.exists()
    assert not IdempotencyRecord.objects.exists()


def test_it_swallows_every_kind_of_write(admin_api, set_faults) -> None:
    tenant = TrialingTenantFactory(id="globex")
    LockedTenantUserFactory(tenant=tenant, email="ops@globex.example")
    TenantConfigFactory(tenant=tenant, key="sso.enabled", value="false")
    set_faults(swallow_writes=True)
    responses = [
        admin_api.post("/tenants/globex/trial/extend", {"days": 7}),
        admin_api.post("/tenants/globex/users/ops@globex.example/unlock"),
        admin_api.put("/tenants/globex/config/sso.enabled", {"value": "true", "reason": "asked"}),
    ]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[1].json()["locked"] is False
    assert responses[2].json()["value"] == "true"
    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at
    assert TenantUser.objects.get(email="ops@globex.example").locked is True
    assert TenantConfig.objects.get(key="sso.enabled").value == "false"


def test_it_reads_the_faults(admin_api, set_faults) -> None:
    set_faults(error_rate=0.25, error_status=500, latency_ms=0, changed_shape=True, swallow_writes=False)
    response = admin_api.get("/_faults")

    assert response.status_code == 200
    assert response.json() == {
        "error_rate": 0.25, "error_status": 500, "latency_ms": 0, "changed_shape": True, "swallow_writes": False,
    }  # fmt: skip


def test_it_reads_no_faults_when_none_was_ever_set(admin_api) -> None:
    assert admin_api.get("/_faults").json() == {
        "error_rate": 0.0, "error_status": 503, "latency_ms": 0, "changed_shape": False, "swallow_writes": False,
    }  # fmt: skip
    assert not FaultSwitch.objects.exists()


def test_it_sets_the_faults(admin_api) -> None:
    response = admin_api.put("/_faults", {"error_rate": 0.5, "error_status": 500, "swallow_writes": True})

    assert response.status_code == 200
    switch = FaultSwitch.objects.get(pk=1)
    assert (switch.error_rate, switch.error_status, switch.latency_ms, switch.swallow_writes) == (0.5, 500, 0, True)
    assert response.json()["swallow_writes"] is True


def test_it_can_switch_every_fault_off_while_they_are_in_force(admin_api, set_faults) -> None:
    set_faults(error_rate=1.0, changed_shape=True, swallow_writes=True)
    response = admin_api.put("/_faults", {})

    assert response.status_code == 200
    assert response.json() == {
        "error_rate": 0.0, "error_status": 503, "latency_ms": 0, "changed_shape": False, "swallow_writes": False,
    }  # fmt: skip
    assert FaultSwitch.objects.get(pk=1).swallow_writes is False


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 1.5}, {"error_rate": -0.1}, {"error_status": 200}, {"error_status": 600}, {"latency_ms": -1}],
)
def test_it_refuses_nonsense_faults(admin_api, body: dict) -> None:
    response = admin_api.put("/_faults", body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_faults"
    assert not FaultSwitch.objects.exists()
