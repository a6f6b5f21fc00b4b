"""The company tools end to end on the real sandbox Admin API, served by pytest-django's live server.

The sandbox rows are the stand-in company's state; the tools reach it only over HTTP, as they reach the real one.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from agent.catalogue import get_tool
from agent.company.auth import admin_api
from agent.tools.base import ErrorType, Observation, Reconciled, ToolContext
from sandbox.models import CacheReset, FaultSwitch, Invoice, Subscription, Tenant, TenantConfig, TenantUser
from tests.factories import ConfigPatchFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the live server's thread sees committed rows only

LOCK_KEY = "terraform.state_lock_timeout"


@pytest.fixture
def company(company: Any) -> dict[str, Tenant]:
    """The company of tests/conftest.py, holding just the tenants these tests work on."""
    now = timezone.now()
    acme = Tenant.objects.create(
        id="acme",
        name="Acme",
        plan=Tenant.Plan.TRIAL,
        status=Tenant.Status.TRIALING,
        trial_ends_at=now + timedelta(days=3, microseconds=123456),
        cache_version=4,
        cache_reset_at=now - timedelta(days=2),
    )
    globex = Tenant.objects.create(
        id="globex", name="Globex", plan=Tenant.Plan.GROWTH, status=Tenant.Status.ACTIVE, cache_version=9
    )
    TenantConfig.objects.create(tenant=acme, key=LOCK_KEY, value="60")
    TenantUser.objects.create(tenant=acme, email="ann@example.com", locked=True, failed_logins=5, locked_at=now)
    TenantUser.objects.create(tenant=acme, email="bob@example.com")
    Subscription.objects.create(tenant=globex, plan="growth", status="active", seats=12, monthly_amount_cents=49900)
    for n, status in enumerate([Invoice.Status.PAID, Invoice.Status.OPEN]):
        Invoice.objects.create(
            tenant=globex,
            number=f"INV-{n}",
            amount_cents=49900,
            status=status,
            issued_at=now - timedelta(days=30 * (2 - n)),
        )
    return {"acme": acme, "globex": globex}


def ctx(tenant_id: str = "acme") -> ToolContext:
    return ToolContext(ticket_id=1, tenant_id=tenant_id, run_id=1, idempotency_key=f"action-{uuid.uuid4()}")


def execute(name: str, args: dict, context: ToolContext) -> tuple[Observation, Observation]:
    """Run the tool, then its verifier, as the agent loop does."""
    tool = get_tool(name)
    assert tool is not None
    started_at = timezone.now()
    result = tool.invoke(args, context)
    return result, tool.invoke_verify(args, context, result, started_at)


def swallow_writes() -> None:
    FaultSwitch.objects.update_or_create(pk=1, defaults={"swallow_writes": True})


# --- reset_tenant_cache -----------------------------------------------------------------------------------------


def test_it_resets_the_cache_and_verifies_the_new_version(company: dict[str, Tenant]) -> None:
    result, verification = execute("reset_tenant_cache", {"tenant_id": "acme"}, ctx())

    assert result.ok is True, result.message
    assert result.meta["before"]["cache_version"] == 4
    assert result.data["cache_version"] == 5
    assert verification.ok is True, verification.message
    assert verification.data["read"]["cache_version"] == 5
    assert Tenant.objects.get(pk="acme").cache_version == 5


def test_it_fails_the_cache_verification_when_the_write_was_swallowed(company: dict[str, Tenant]) -> None:
    swallow_writes()

    result, verification = execute("reset_tenant_cache", {"tenant_id": "acme"}, ctx())

    assert result.ok is True  # the API claimed success
    assert verification.ok is False
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    assert "expected cache_version above 4" in verification.message
    assert "read cache_version 4" in verification.message
    assert Tenant.objects.get(pk="acme").cache_version == 4


def test_it_checks_the_version_and_the_reset_time_separately(company: dict[str, Tenant]) -> None:
    tool = get_tool("reset_tenant_cache")
    assert tool is not None
    context = ctx()
    started_at = timezone.now()
    result = tool.invoke({"tenant_id": "acme"}, context)  # a real reset: 4 -> 5
    assert result.ok is True, result.message

    version_not_above = Observation.success(
        result.data, **{**result.meta, "before": {**result.meta["before"], "cache_version": 5}}
    )
    too_early = started_at + timedelta(hours=1)

    assert tool.invoke_verify({"tenant_id": "acme"}, context, result, started_at).ok is True
    assert tool.invoke_verify({"tenant_id": "acme"}, context, version_not_above, started_at).error_type == (
        ErrorType.VERIFICATION_FAILED
    )
    assert tool.invoke_verify({"tenant_id": "acme"}, context, result, too_early).error_type == (
        ErrorType.VERIFICATION_FAILED
    )


def test_it_replays_a_reset_with_the_same_idempotency_key_and_still_verifies(company: dict[str, Tenant]) -> None:
    context = ctx()
    tool = get_tool("reset_tenant_cache")
    assert tool is not None
    started_at = timezone.now()

    first = tool.invoke({"tenant_id": "acme"}, context)
    second = tool.invoke({"tenant_id": "acme"}, context)  # the same action executed again, e.g. after a crash

    assert first.ok is True and second.ok is True
    assert (first.meta["replayed"], second.meta["replayed"]) == (False, True)
    assert second.data == first.data
    assert tool.invoke_verify({"tenant_id": "acme"}, context, second, started_at).ok is True
    assert Tenant.objects.get(pk="acme").cache_version == 5
    assert CacheReset.objects.filter(tenant_id="acme").count() == 1


def test_it_hands_back_a_long_rate_limit_as_retryable(company: dict[str, Tenant]) -> None:
    CacheReset.objects.create(tenant=company["acme"], performed_at=timezone.now())

    result, _ = execute("reset_tenant_cache", {"tenant_id": "acme"}, ctx())

    assert result.ok is False
    assert result.error_type == ErrorType.UPSTREAM
    assert result.retryable is True
    assert result.meta["status_code"] == 429
    assert result.meta["retry_after_seconds"] > 5
    assert Tenant.objects.get(pk="acme").cache_version == 4


def test_it_refuses_a_call_naming_another_tenant(company: dict[str, Tenant]) -> None:
    result, _ = execute("reset_tenant_cache", {"tenant_id": "globex"}, ctx("acme"))

    assert result.error_type == ErrorType.TENANT_MISMATCH
    assert Tenant.objects.get(pk="globex").cache_version == 9
    assert Tenant.objects.get(pk="acme").cache_version == 4


def test_it_reports_a_changed_response_shape(company: dict[str, Tenant]) -> None:
    FaultSwitch.objects.update_or_create(pk=1, defaults={"changed_shape": True})

    result, _ = execute("reset_tenant_cache", {"tenant_id": "acme"}, ctx())

    assert result.error_type == ErrorType.UNEXPECTED_RESPONSE
    assert "got keys data, meta" in result.message
    assert Tenant.objects.get(pk="acme").cache_version == 4  # nothing written after an unreadable read


def test_it_reports_a_failing_api_after_retrying(company: dict[str, Tenant], settings: Any) -> None:
    settings.ADMIN_API_MAX_ATTEMPTS = 2
    FaultSwitch.objects.update_or_create(pk=1, defaults={"error_rate": 1.0, "error_status": 503})

    result, _ = execute("get_billing_status", {"tenant_id": "acme"}, ctx())

    assert result.error_type == ErrorType.UPSTREAM
    assert result.retryable is True
    assert result.meta["attempts"] == 2
    assert "injected_fault" in result.message


# --- extend_trial -----------------------------------------------------------------------------------------------


def test_it_extends_the_trial_and_verifies_the_new_end(company: dict[str, Tenant]) -> None:
    before = company["acme"].trial_ends_at

    result, verification = execute("extend_trial", {"tenant_id": "acme", "days": 5}, ctx())

    assert result.ok is True, result.message
    assert verification.ok is True, verification.message
    assert Tenant.objects.get(pk="acme").trial_ends_at == before + timedelta(days=5)


def test_it_fails_the_trial_verification_when_the_write_was_swallowed(company: dict[str, Tenant]) -> None:
    before = company["acme"].trial_ends_at
    swallow_writes()

    result, verification = execute("extend_trial", {"tenant_id": "acme", "days": 5}, ctx())

    assert result.ok is True
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    expected = (before + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert f"expected trial_ends_at {expected}" in verification.message
    assert Tenant.objects.get(pk="acme").trial_ends_at == before


def test_it_rejects_31_days_before_calling_the_api(company: dict[str, Tenant]) -> None:
    before = company["acme"].trial_ends_at

    result, _ = execute("extend_trial", {"tenant_id": "acme", "days": 31}, ctx())

    assert result.error_type == ErrorType.INVALID_ARGUMENTS
    assert Tenant.objects.get(pk="acme").trial_ends_at == before


def test_it_surfaces_the_apis_own_31_day_refusal_as_refused(company: dict[str, Tenant]) -> None:
    # The schema stops 31 days first; the API's rule is the one that counts if the two ever disagree.
    with admin_api() as api:
        result = api.request("POST", "/tenants/acme/trial/extend", body={"days": 31})

    assert isinstance(result, Observation)
    assert result.error_type == ErrorType.REFUSED
    assert result.meta["error_code"] == "invalid_days"
    assert "1 to 30 days" in result.message


def test_it_refuses_to_extend_a_tenant_that_is_not_trialing(company: dict[str, Tenant]) -> None:
    result, verification = execute("extend_trial", {"tenant_id": "globex", "days": 5}, ctx("globex"))

    assert result.error_type == ErrorType.REFUSED
    assert result.meta["error_code"] == "trial_not_active"
    assert "'active'" in result.message
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    assert Tenant.objects.get(pk="globex").trial_ends_at is None


# --- unlock_user ------------------------------------------------------------------------------------------------


def test_it_unlocks_a_user_and_verifies_it(company: dict[str, Tenant]) -> None:
    result, verification = execute("unlock_user", {"tenant_id": "acme", "email": "ann@example.com"}, ctx())

    assert result.ok is True, result.message
    assert verification.ok is True, verification.message
    user = TenantUser.objects.get(email="ann@example.com")
    assert (user.locked, user.failed_logins) == (False, 0)


def test_it_fails_the_unlock_verification_when_the_write_was_swallowed(company: dict[str, Tenant]) -> None:
    swallow_writes()

    result, verification = execute("unlock_user", {"tenant_id": "acme", "email": "ann@example.com"}, ctx())

    assert result.ok is True
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    assert "read locked true" in verification.message
    assert TenantUser.objects.get(email="ann@example.com").locked is True


def test_it_refuses_to_unlock_a_user_who_is_not_locked(company: dict[str, Tenant]) -> None:
    result, _ = execute("unlock_user", {"tenant_id": "acme", "email": "bob@example.com"}, ctx())

    assert result.error_type == ErrorType.REFUSED
    assert result.meta["error_code"] == "user_not_locked"


def test_it_reports_an_unknown_user_as_not_found(company: dict[str, Tenant]) -> None:
    result, _ = execute("unlock_user", {"tenant_id": "acme", "email": "nobody@example.com"}, ctx())

    assert result.error_type == ErrorType.NOT_FOUND
    assert "nobody@example.com" in result.message


# --- apply_config_patch -----------------------------------------------------------------------------------------


def test_it_applies_a_config_patch_and_verifies_the_value(company: dict[str, Tenant]) -> None:
    ConfigPatchFactory(patch_id="terraform-lock-timeout", config_key=LOCK_KEY, value="300")

    result, verification = execute(
        "apply_config_patch", {"tenant_id": "acme", "patch_id": "terraform-lock-timeout"}, ctx()
    )

    assert result.ok is True, result.message
    assert result.data["previous_value"] == "60"
    assert verification.ok is True, verification.message
    assert TenantConfig.objects.get(tenant_id="acme", key=LOCK_KEY).value == "300"


def test_it_fails_the_config_verification_when_the_write_was_swallowed(company: dict[str, Tenant]) -> None:
    ConfigPatchFactory(patch_id="terraform-lock-timeout", config_key=LOCK_KEY, value="300")
    swallow_writes()

    result, verification = execute(
        "apply_config_patch", {"tenant_id": "acme", "patch_id": "terraform-lock-timeout"}, ctx()
    )

    assert result.ok is True
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    assert f"expected config {LOCK_KEY} = 300; read 60" in verification.message


@pytest.mark.parametrize("patch_id", ["no-such-patch", "disabled-patch"])
def test_it_refuses_an_unknown_or_disabled_patch(company: dict[str, Tenant], patch_id: str) -> None:
    ConfigPatchFactory(patch_id="terraform-lock-timeout", title="Terraform lock", config_key=LOCK_KEY, value="300")
    ConfigPatchFactory(patch_id="disabled-patch", config_key=LOCK_KEY, value="999", enabled=False)

    result, _ = execute("apply_config_patch", {"tenant_id": "acme", "patch_id": patch_id}, ctx())

    assert result.error_type == ErrorType.REFUSED
    assert "terraform-lock-timeout (Terraform lock)" in result.message
    assert result.meta["known_patch_ids"] == ["terraform-lock-timeout"]
    assert TenantConfig.objects.get(tenant_id="acme", key=LOCK_KEY).value == "60"


# --- get_billing_status -----------------------------------------------------------------------------------------


def test_it_reads_the_billing_status(company: dict[str, Tenant]) -> None:
    result, _ = execute("get_billing_status", {"tenant_id": "globex"}, ctx("globex"))

    assert result.ok is True, result.message
    assert (result.data["plan"], result.data["status"]) == ("growth", "active")
    assert result.data["subscription"]["seats"] == 12
    assert [invoice["number"] for invoice in result.data["invoices"]] == ["INV-1", "INV-0"]


def _uncertain(**meta: Any) -> Observation:
    return Observation.failure(ErrorType.TIMEOUT, "no answer", uncertain=True, **meta)


def test_it_reconciles_a_write_of_unknown_outcome_from_the_state_recorded_before_it(company: dict[str, Tenant]) -> None:
    tool = get_tool("extend_trial")
    started = timezone.now()
    result = tool.invoke({"tenant_id": "acme", "days": 2}, ctx())
    before = result.meta["before"]
    assert result.ok and before["trial_ends_at"] is not None

    applied, check = tool.invoke_reconcile({"tenant_id": "acme", "days": 2}, ctx(), _uncertain(before=before), started)
    assert applied == Reconciled.APPLIED and check.data["verified"] is True
    not_applied, _ = tool.invoke_reconcile({"tenant_id": "acme", "days": 5}, ctx(), _uncertain(before=before), started)
    assert not_applied == Reconciled.NOT_APPLIED
    # Without the state before the call (the worker died mid-call) the re-read cannot tell.
    unknown, check = tool.invoke_reconcile({"tenant_id": "acme", "days": 2}, ctx(), _uncertain(), started)
    assert (unknown, check.error_type) == (Reconciled.UNKNOWN, ErrorType.OUTCOME_UNKNOWN)


def test_it_cannot_tell_a_cache_reset_happened_while_the_api_cannot_be_read(company: dict[str, Tenant]) -> None:
    tool = get_tool("reset_tenant_cache")
    FaultSwitch.objects.update_or_create(pk=1, defaults={"error_rate": 1.0, "error_status": 503})
    state, check = tool.invoke_reconcile(
        {"tenant_id": "acme"}, ctx(), _uncertain(before={"cache_version": 4}), timezone.now()
    )
    assert state == Reconciled.UNKNOWN and check.error_type == ErrorType.UPSTREAM
    FaultSwitch.objects.filter(pk=1).update(error_rate=0.0)
    state, _ = tool.invoke_reconcile(
        {"tenant_id": "acme"}, ctx(), _uncertain(before={"cache_version": 4}), timezone.now()
    )
    assert state == Reconciled.NOT_APPLIED
