from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from sandbox import services
from sandbox.models import CacheReset, FaultSwitch, IdempotencyRecord, Tenant
from tests.sandbox.factories import CacheResetFactory, TenantFactory, TrialingTenantFactory

pytestmark = pytest.mark.django_db


def test_it_allows_a_reset_exactly_at_the_interval(settings) -> None:
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 60
    now = timezone.now()
    tenant = TenantFactory(id="acme", cache_version=2)
    CacheResetFactory(tenant=tenant, performed_at=now - timedelta(seconds=60))

    assert services.tenant_cache_reset(tenant_id="acme", now=now).cache_version == 3
    assert CacheReset.objects.filter(tenant=tenant).count() == 2


def test_it_rounds_the_retry_after_up(settings) -> None:
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 60
    now = timezone.now()
    CacheResetFactory(tenant=TenantFactory(id="acme"), performed_at=now - timedelta(seconds=59, milliseconds=500))

    with pytest.raises(services.CacheResetRateLimited) as raised:
        services.tenant_cache_reset(tenant_id="acme", now=now)
    assert raised.value.retry_after == 1
    assert raised.value.status_code == 429


def test_it_never_rate_limits_with_a_zero_interval(settings) -> None:
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 0
    now = timezone.now()
    TenantFactory(id="acme", cache_version=1)
    services.tenant_cache_reset(tenant_id="acme", now=now)

    assert services.tenant_cache_reset(tenant_id="acme", now=now).cache_version == 3


def test_it_extends_a_trial_by_whole_days() -> None:
    now = timezone.now()
    end = now + timedelta(days=3)
    TrialingTenantFactory(id="globex", trial_ends_at=end)
    extension = services.tenant_trial_extend(tenant_id="globex", days=30, now=now)

    assert extension.previous_trial_ends_at == end
    assert extension.tenant.trial_ends_at == end + timedelta(days=30)
    assert Tenant.objects.get(pk="globex").trial_ends_at == end + timedelta(days=30)


def test_it_checks_the_days_before_touching_the_tenant() -> None:
    with pytest.raises(services.InvalidDays):
        services.tenant_trial_extend(tenant_id="nope", days=31, now=timezone.now())


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_claim_a_key_outside_a_transaction() -> None:
    with pytest.raises(RuntimeError):
        services.idempotency_record_claim(key="k", method="POST", path="/p", request_hash="h")
    assert not IdempotencyRecord.objects.exists()


def test_it_returns_the_stored_record_for_the_same_request() -> None:
    with transaction.atomic():
        record, created = services.idempotency_record_claim(key="k", method="POST", path="/p", request_hash="h")
        services.idempotency_record_complete(record=record, status_code=200, response_body={"ok": True})
    with transaction.atomic():
        stored, created_again = services.idempotency_record_claim(key="k", method="POST", path="/p", request_hash="h")

    assert (created, created_again) == (True, False)
    assert (stored.pk, stored.status_code, stored.response_body) == (record.pk, 200, {"ok": True})


def test_it_raises_for_the_same_key_with_another_request() -> None:
    with transaction.atomic():
        record, _ = services.idempotency_record_claim(key="k", method="POST", path="/p", request_hash="h1")
        services.idempotency_record_complete(record=record, status_code=200, response_body={"ok": True})

    with pytest.raises(services.IdempotencyKeyReused), transaction.atomic():
        services.idempotency_record_claim(key="k", method="POST", path="/p", request_hash="h2")
    assert IdempotencyRecord.objects.count() == 1


def test_it_sets_and_validates_the_fault_switch() -> None:
    services.fault_switch_set(error_rate=0.5, error_status=502, latency_ms=10, changed_shape=True, swallow_writes=False)
    with pytest.raises(services.InvalidFaults) as raised:
        services.fault_switch_set(
            error_rate=2.0, error_status=302, latency_ms=0, changed_shape=False, swallow_writes=False
        )

    switch = FaultSwitch.objects.get()
    assert (switch.pk, switch.error_rate, switch.error_status, switch.changed_shape) == (1, 0.5, 502, True)
    assert "error_rate" in raised.value.message
    assert "error_status" in raised.value.message
