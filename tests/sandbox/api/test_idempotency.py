from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sandbox.models import CacheReset, IdempotencyRecord, Tenant, TenantConfig
from tests.sandbox.conftest import AdminApi
from tests.sandbox.factories import (
    CacheResetFactory,
    LockedTenantUserFactory,
    TenantConfigFactory,
    TenantFactory,
    TrialingTenantFactory,
)


@pytest.mark.django_db
def test_it_replays_a_repeated_request_without_a_second_effect(admin_api) -> None:
    TenantFactory(id="acme", cache_version=7)
    first = admin_api.post("/tenants/acme/cache/reset", key="reset-acme-1")
    again = admin_api.post("/tenants/acme/cache/reset", key="reset-acme-1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Tenant.objects.get(pk="acme").cache_version == 8
    assert CacheReset.objects.count() == 1


@pytest.mark.django_db
def test_it_stores_the_outcome_with_the_key(admin_api) -> None:
    TrialingTenantFactory(id="globex")
    response = admin_api.post("/tenants/globex/trial/extend", {"days": 5}, key="trial-1")

    record = IdempotencyRecord.objects.get(key="trial-1")
    assert (record.method, record.path, record.status_code) == (
        "POST", "/sandbox/admin-api/v1/tenants/globex/trial/extend", 200,
    )  # fmt: skip
    assert record.response_body == response.json()


@pytest.mark.django_db
def test_it_treats_an_empty_body_and_an_empty_object_as_the_same_request(admin_api) -> None:
    TenantFactory(id="acme", cache_version=1)
    admin_api.post("/tenants/acme/cache/reset", key="reset-1")
    again = admin_api.post("/tenants/acme/cache/reset", {}, key="reset-1")

    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert Tenant.objects.get(pk="acme").cache_version == 2


@pytest.mark.django_db
def test_it_matches_bodies_by_content_not_key_order(admin_api) -> None:
    tenant = TenantFactory(id="stark")
    TenantConfigFactory(tenant=tenant, key="a", value="1")
    admin_api.put("/tenants/stark/config/a", '{"value": "2", "reason": "r"}', key="cfg-1")
    again = admin_api.put("/tenants/stark/config/a", '{"reason": "r", "value": "2"}', key="cfg-1")

    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["previous_value"] == "1"


@pytest.mark.django_db
def test_it_acts_again_without_a_key(admin_api) -> None:
    tenant = TrialingTenantFactory(id="globex")
    admin_api.post("/tenants/globex/trial/extend", {"days": 2})
    admin_api.post("/tenants/globex/trial/extend", {"days": 2})

    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at + timedelta(days=4)
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_key_reused_with_another_body(admin_api) -> None:
    tenant = TrialingTenantFactory(id="globex")
    admin_api.post("/tenants/globex/trial/extend", {"days": 5}, key="trial-1")
    response = admin_api.post("/tenants/globex/trial/extend", {"days": 9}, key="trial-1")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotent-Replayed" not in response
    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at + timedelta(days=5)


@pytest.mark.django_db
def test_it_refuses_a_key_reused_on_another_path(admin_api) -> None:
    TenantFactory(id="acme", cache_version=1)
    TenantFactory(id="hooli", cache_version=1)
    admin_api.post("/tenants/acme/cache/reset", key="reset-1")
    response = admin_api.post("/tenants/hooli/cache/reset", key="reset-1")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Tenant.objects.get(pk="hooli").cache_version == 1


@pytest.mark.django_db
def test_it_replays_a_client_error_too(admin_api) -> None:
    TenantFactory(id="initech")
    LockedTenantUserFactory(tenant=Tenant.objects.get(pk="initech"), email="ops@initech.example", locked=False)
    first = admin_api.post("/tenants/initech/users/ops@initech.example/unlock", key="unlock-1")
    again = admin_api.post("/tenants/initech/users/ops@initech.example/unlock", key="unlock-1")

    assert first.status_code == again.status_code == 409
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_it_replays_a_success_even_after_the_state_changed(admin_api) -> None:
    LockedTenantUserFactory(tenant=TenantFactory(id="initech"), email="ops@initech.example")
    first = admin_api.post("/tenants/initech/users/ops@initech.example/unlock", key="unlock-1")
    again = admin_api.post("/tenants/initech/users/ops@initech.example/unlock", key="unlock-1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()


@pytest.mark.django_db
def test_it_does_not_remember_a_rate_limit_so_the_retry_can_succeed(admin_api) -> None:
    tenant = TenantFactory(id="acme", cache_version=3)
    CacheResetFactory(tenant=tenant, performed_at=timezone.now())
    limited = admin_api.post("/tenants/acme/cache/reset", key="reset-1")
    CacheReset.objects.all().delete()  # the interval has passed
    retried = admin_api.post("/tenants/acme/cache/reset", key="reset-1")

    assert limited.status_code == 429
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert Tenant.objects.get(pk="acme").cache_version == 4


@pytest.mark.django_db
def test_it_does_not_remember_an_injected_fault_so_the_retry_can_succeed(admin_api, set_faults) -> None:
    TenantFactory(id="acme", cache_version=3)
    set_faults(error_rate=1.0, error_status=503)
    failed = admin_api.post("/tenants/acme/cache/reset", key="reset-1")
    set_faults(error_rate=0.0)
    retried = admin_api.post("/tenants/acme/cache/reset", key="reset-1")

    assert failed.status_code == 503
    assert retried.status_code == 200
    assert Tenant.objects.get(pk="acme").cache_version == 4
    assert IdempotencyRecord.objects.get(key="reset-1").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "   ", "k" * 201])
def test_it_refuses_an_invalid_key(admin_api, key: str) -> None:
    TenantFactory(id="acme", cache_version=3)
    response = admin_api.post("/tenants/acme/cache/reset", key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert Tenant.objects.get(pk="acme").cache_version == 3


@pytest.mark.django_db
def test_it_honours_the_key_on_put(admin_api) -> None:
    TenantConfigFactory(tenant=TenantFactory(id="stark"), key="terraform.state_lock_timeout", value="0")
    body = {"value": "300", "reason": "patch"}
    first = admin_api.put("/tenants/stark/config/terraform.state_lock_timeout", body, key="cfg-1")
    TenantConfig.objects.filter(key="terraform.state_lock_timeout").update(value="15")
    again = admin_api.put("/tenants/stark/config/terraform.state_lock_timeout", body, key="cfg-1")

    assert again.json() == first.json() == {
        "tenant_id": "stark", "key": "terraform.state_lock_timeout", "value": "300", "previous_value": "0",
    }  # fmt: skip
    assert TenantConfig.objects.get(key="terraform.state_lock_timeout").value == "15"


@pytest.mark.django_db(transaction=True)
def test_it_acts_once_under_concurrent_requests_with_the_same_key() -> None:
    tenant = TrialingTenantFactory(id="globex")
    barrier = threading.Barrier(8)
    responses: list[object] = []
    errors: list[BaseException] = []

    def extend() -> None:
        try:
            barrier.wait()
            responses.append(AdminApi().post("/tenants/globex/trial/extend", {"days": 7}, key="concurrent-1"))
        except BaseException as exc:  # reported below, outside the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=extend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [response.status_code for response in responses] == [200] * 8
    bodies = [response.json() for response in responses]
    assert all(body == bodies[0] for body in bodies)
    assert sum(response.has_header("Idempotent-Replayed") for response in responses) == 7
    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at + timedelta(days=7)
    assert IdempotencyRecord.objects.count() == 1
