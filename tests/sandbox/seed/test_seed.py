from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count

from console.demo import DEMO_ORGANIZATIONS
from sandbox.logs import filter_log_events
from sandbox.models import (
    CacheReset,
    Invoice,
    LogEvent,
    LoginAttempt,
    Subscription,
    Tenant,
    TenantConfig,
    TenantUser,
)
from sandbox.seed import sandbox_seed

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MODELS = [Tenant, TenantUser, LoginAttempt, Subscription, Invoice, TenantConfig, LogEvent, CacheReset]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _table_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def _snapshot() -> dict[str, list]:
    return {
        "tenants": list(Tenant.objects.values_list("id", "plan", "status", "trial_ends_at", "cache_version")),
        "users": list(TenantUser.objects.values_list("email", "locked", "failed_logins", "last_login_at")),
        "invoices": list(Invoice.objects.order_by("number").values_list("number", "amount_cents", "status")),
        "logs": list(LogEvent.objects.order_by("timestamp", "message").values_list("timestamp", "message")),
        "config": list(TenantConfig.objects.values_list("tenant_id", "key", "value")),
    }


@pytest.fixture
def seeded() -> dict[str, int]:
    return sandbox_seed(now=NOW)


def test_it_seeds_at_least_24_tenants_including_the_demo_tenants(seeded) -> None:
    tenant_ids = set(Tenant.objects.values_list("id", flat=True))

    assert len(tenant_ids) >= 24
    assert {tenant_id for _, _, tenant_id in DEMO_ORGANIZATIONS} <= tenant_ids
    assert seeded["tenants"] == len(tenant_ids)


def test_it_returns_the_counts_it_owns(seeded) -> None:
    assert seeded == {
        "tenants": Tenant.objects.count(),
        "tenant_users": TenantUser.objects.count(),
        "login_attempts": LoginAttempt.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "invoices": Invoice.objects.count(),
        "config_values": TenantConfig.objects.count(),
        "log_events": LogEvent.objects.count(),
        "cache_resets": CacheReset.objects.count(),
    }


def test_it_changes_no_counts_when_run_again(seeded) -> None:
    before = _table_counts()
    again = sandbox_seed(now=NOW + timedelta(minutes=5))

    assert _table_counts() == before
    assert again == seeded


def test_it_seeds_a_database_without_its_tenants_in_a_few_statements(django_assert_max_num_queries) -> None:
    # Each test of the company seeds it anew; one row at a time took ~2,700 statements.
    with django_assert_max_num_queries(20):
        counts = sandbox_seed(now=NOW)

    assert _table_counts()["TenantUser"] == counts["tenant_users"] > counts["tenants"]
    assert TenantUser.objects.filter(locked=True).count() == 2


def test_it_is_deterministic_for_the_same_now(seeded) -> None:
    first = _snapshot()
    sandbox_seed(now=NOW)

    assert _snapshot() == first


def test_it_puts_the_scenarios_back_after_a_demo_changed_them(seeded) -> None:
    TenantUser.objects.filter(email="ops@initech.example").update(locked=False, failed_logins=0)
    TenantConfig.objects.filter(tenant_id="stark", key="terraform.state_lock_timeout").update(value="300")
    sandbox_seed(now=NOW)

    assert TenantUser.objects.get(email="ops@initech.example").locked is True
    assert TenantConfig.objects.get(tenant_id="stark", key="terraform.state_lock_timeout").value == "0"


def test_it_gives_every_tenant_users_attempts_billing_config_and_recent_logs(seeded) -> None:
    tenants = Tenant.objects.annotate(
        n_users=Count("users", distinct=True),
        n_attempts=Count("login_attempts", distinct=True),
        n_subscriptions=Count("subscriptions", distinct=True),
        n_invoices=Count("invoices", distinct=True),
        n_config=Count("config", distinct=True),
        n_events=Count("log_events", distinct=True),
    )
    for tenant in tenants:
        assert tenant.n_users >= 3, tenant.pk
        assert tenant.n_attempts >= 3, tenant.pk
        assert tenant.n_subscriptions == 1, tenant.pk
        assert tenant.n_invoices >= 2, tenant.pk
        assert tenant.n_config >= 3, tenant.pk
        assert tenant.n_events >= 20, tenant.pk
    assert not LogEvent.objects.filter(timestamp__lt=NOW - timedelta(hours=48)).exists()
    assert not LogEvent.objects.filter(timestamp__gt=NOW).exists()
    assert set(LogEvent.objects.values_list("log_group", flat=True)) == {settings.LOGS_GROUP_NAME}


def test_it_gives_acme_recent_cache_errors_and_an_old_cache_reset(seeded) -> None:
    acme = Tenant.objects.get(pk="acme")
    errors = filter_log_events(
        log_group_name=settings.LOGS_GROUP_NAME,
        log_stream_names=["acme"],
        filter_pattern="ERROR cache_error",
        start_time=_ms(NOW - timedelta(hours=24)),
    )["events"]

    assert len(errors) >= 3
    assert all('key=dashboard:summary detail="stale entry"' in event["message"] for event in errors)
    assert acme.cache_reset_at < NOW - timedelta(days=7)
    assert CacheReset.objects.filter(tenant=acme).latest("performed_at").performed_at == acme.cache_reset_at
    assert acme.cache_version == 1 + CacheReset.objects.filter(tenant=acme).count()


def test_it_gives_globex_a_trial_ending_in_three_days(seeded) -> None:
    globex = Tenant.objects.get(pk="globex")

    assert globex.status == "trialing"
    assert globex.trial_ends_at == NOW + timedelta(days=3)


def test_it_locks_ops_at_initech_after_five_failed_logins_in_the_last_hour(seeded) -> None:
    user = TenantUser.objects.get(tenant_id="initech", email="ops@initech.example")
    failures = LoginAttempt.objects.filter(user=user, success=False, attempted_at__gte=NOW - timedelta(hours=1))
    lines = filter_log_events(
        log_group_name=settings.LOGS_GROUP_NAME,
        log_stream_names=["initech"],
        filter_pattern='login_failed "email=ops@initech.example"',
        start_time=_ms(NOW - timedelta(hours=1)),
    )["events"]

    assert (user.locked, user.failed_logins) == (True, 5)
    assert NOW - timedelta(hours=1) < user.locked_at <= NOW
    assert failures.count() == 5
    assert set(failures.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    assert len(lines) == 5
    assert all(
        "WARN login_failed tenant=initech email=ops@initech.example ip=203.0.113.7" in e["message"] for e in lines
    )


def test_it_double_charges_umbrella_in_october(seeded) -> None:
    october = Invoice.objects.filter(tenant_id="umbrella", issued_at__year=2026, issued_at__month=10)

    assert october.count() == 2
    assert len(set(october.values_list("amount_cents", flat=True))) == 1
    assert set(october.values_list("status", flat=True)) == {"paid"}
    assert Invoice.objects.filter(tenant_id="umbrella").exclude(issued_at__month=10).count() == 5


def test_it_shows_the_double_charge_in_the_billing_endpoint(seeded, admin_api) -> None:
    invoices = admin_api.get("/tenants/umbrella/billing").json()["invoices"]
    october = [invoice for invoice in invoices if invoice["issued_at"].startswith("2026-10")]

    assert len(invoices) == 6
    assert len(october) == 2
    assert october[0]["amount_cents"] == october[1]["amount_cents"]


def test_it_keeps_umbrellas_october_when_october_is_long_past() -> None:
    sandbox_seed(now=datetime(2027, 6, 15, tzinfo=UTC))

    assert Invoice.objects.filter(tenant_id="umbrella", issued_at__year=2026, issued_at__month=10).count() == 2


def test_it_gives_stark_a_known_bad_config_value(seeded) -> None:
    assert TenantConfig.objects.get(tenant_id="stark", key="terraform.state_lock_timeout").value == "0"
    assert TenantConfig.objects.filter(key="terraform.state_lock_timeout").exclude(tenant_id="stark").exists()
    assert not TenantConfig.objects.filter(key="terraform.state_lock_timeout", value="0").exclude(tenant_id="stark")


def test_it_serves_the_seeded_demo_tenants_through_the_admin_api(seeded, admin_api) -> None:
    assert admin_api.get("/tenants/globex").json()["status"] == "trialing"
    assert admin_api.get("/tenants/initech/users/ops@initech.example").json()["locked"] is True
    assert admin_api.get("/tenants/stark/config").json()["values"]["terraform.state_lock_timeout"] == "0"


def test_it_seeds_from_the_management_command(capsys) -> None:
    call_command("seed_sandbox")

    assert Tenant.objects.count() >= 24
    assert "Sandbox seeded:" in capsys.readouterr().out
