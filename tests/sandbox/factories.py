"""Factories for the sandbox's models (the sandbox's own: tests/factories.py belongs to the console's apps)."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.conf import settings
from django.utils import timezone

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


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ["id"]

    id = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: f"{t.id.title()} Inc")
    plan = Tenant.Plan.GROWTH
    status = Tenant.Status.ACTIVE
    trial_ends_at = None
    cache_version = 1
    cache_reset_at = None


class TrialingTenantFactory(TenantFactory):
    plan = Tenant.Plan.TRIAL
    status = Tenant.Status.TRIALING
    trial_ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=3))


class TenantConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantConfig

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"setting.{n}")
    value = "on"


class TenantUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantUser

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    failed_logins = 0
    locked = False
    locked_at = None


class LockedTenantUserFactory(TenantUserFactory):
    failed_logins = 5
    locked = True
    locked_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=10))


class LoginAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LoginAttempt

    user = factory.SubFactory(TenantUserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    email = factory.SelfAttribute("user.email")
    attempted_at = factory.LazyFunction(timezone.now)
    success = False
    ip_address = "203.0.113.7"


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    tenant = factory.SubFactory(TenantFactory)
    plan = Tenant.Plan.GROWTH
    status = "active"
    seats = 20
    monthly_amount_cents = 38_000
    currency = "EUR"
    current_period_end = factory.LazyFunction(lambda: timezone.now() + timedelta(days=10))


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    tenant = factory.SubFactory(TenantFactory)
    number = factory.Sequence(lambda n: f"INV-TEST-{n:05d}")
    amount_cents = 38_000
    currency = "EUR"
    status = Invoice.Status.PAID
    issued_at = factory.LazyFunction(timezone.now)
    paid_at = factory.LazyAttribute(lambda i: i.issued_at + timedelta(days=1))


class LogEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LogEvent

    log_group = factory.LazyFunction(lambda: settings.LOGS_GROUP_NAME)
    tenant = factory.SubFactory(TenantFactory)
    timestamp = factory.LazyFunction(timezone.now)
    level = "INFO"
    message = factory.LazyAttribute(lambda e: f"INFO request_completed tenant={e.tenant.id} status=200")


class CacheResetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CacheReset

    tenant = factory.SubFactory(TenantFactory)
    performed_at = factory.LazyFunction(timezone.now)
