"""A stand-in for the company's own systems: its tenant database, its internal Admin API's state, its logs.

Console code never imports these models: the agent reaches this data only through the read-only support views
(run_sql), the Admin API over HTTP and the logs interface, exactly as it would reach the real systems.
"""

from __future__ import annotations

from django.db import models


class Tenant(models.Model):
    class Plan(models.TextChoices):
        TRIAL = "trial", "Trial"
        STARTER = "starter", "Starter"
        GROWTH = "growth", "Growth"
        ENTERPRISE = "enterprise", "Enterprise"

    class Status(models.TextChoices):
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        SUSPENDED = "suspended", "Suspended"
        CANCELED = "canceled", "Canceled"

    id = models.SlugField(primary_key=True, max_length=64)
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=16, choices=Plan.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    cache_version = models.PositiveIntegerField(default=1)
    cache_reset_at = models.DateTimeField(null=True, blank=True)
    region = models.CharField(max_length=32, default="eu-west-1")
    internal_notes = models.TextField(blank=True, help_text="Not exposed to support views.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sandbox_tenant"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class TenantConfig(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="config")
    key = models.CharField(max_length=100)
    value = models.CharField(max_length=500)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sandbox_tenant_config"
        ordering = ["tenant_id", "key"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="sandbox_config_key_unique")]

    def __str__(self) -> str:
        return f"{self.tenant_id}.{self.key}={self.value}"


class TenantUser(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="users")
    email = models.EmailField()
    role = models.CharField(max_length=32, default="member")
    failed_logins = models.PositiveIntegerField(default=0)
    locked = models.BooleanField(default=False)
    locked_at = models.DateTimeField(null=True, blank=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    password_hash = models.CharField(max_length=128, default="!", help_text="Never exposed to support views.")

    class Meta:
        db_table = "sandbox_tenant_user"
        ordering = ["tenant_id", "email"]
        constraints = [models.UniqueConstraint(fields=["tenant", "email"], name="sandbox_user_email_unique")]

    def __str__(self) -> str:
        return f"{self.email} @ {self.tenant_id}"


class LoginAttempt(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="login_attempts")
    user = models.ForeignKey(TenantUser, null=True, blank=True, on_delete=models.CASCADE, related_name="attempts")
    email = models.EmailField()
    attempted_at = models.DateTimeField(db_index=True)
    success = models.BooleanField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "sandbox_login_attempt"
        ordering = ["-attempted_at"]

    def __str__(self) -> str:
        return f"{'ok' if self.success else 'failed'} login {self.email} at {self.attempted_at:%Y-%m-%d %H:%M}"


class Subscription(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.CharField(max_length=16, choices=Tenant.Plan.choices)
    status = models.CharField(max_length=16)
    seats = models.PositiveIntegerField(default=1)
    monthly_amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="EUR")
    current_period_end = models.DateTimeField(null=True, blank=True)
    payment_method_last4 = models.CharField(max_length=4, blank=True, help_text="Not exposed to support views.")

    class Meta:
        db_table = "sandbox_subscription"
        ordering = ["tenant_id", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.plan} ({self.status})"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invoices")
    number = models.CharField(max_length=32, unique=True)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=16, choices=Status.choices)
    issued_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "sandbox_invoice"
        ordering = ["tenant_id", "-issued_at"]

    def __str__(self) -> str:
        return f"{self.number} {self.tenant_id} {self.status}"


class LogEvent(models.Model):
    """One application log line. The log stream is the tenant id, as the company's apps write them."""

    log_group = models.CharField(max_length=200, default="/company/app")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="log_events")
    timestamp = models.DateTimeField(db_index=True)
    level = models.CharField(max_length=8, default="INFO")
    message = models.TextField()

    class Meta:
        db_table = "sandbox_log_event"
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.tenant_id} {self.level}"


class CacheReset(models.Model):
    """Every cache reset the Admin API performed; also the basis of its rate limit."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cache_resets")
    performed_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "sandbox_cache_reset"
        ordering = ["-performed_at"]

    def __str__(self) -> str:
        return f"cache reset of {self.tenant_id} at {self.performed_at:%Y-%m-%d %H:%M:%S}"


class IdempotencyRecord(models.Model):
    """The Admin API's memory of an Idempotency-Key: the same key replays the same response."""

    key = models.CharField(max_length=200)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sandbox_idempotency_record"
        constraints = [models.UniqueConstraint(fields=["key"], name="sandbox_idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} key={self.key}"


class FaultSwitch(models.Model):
    """Faults the Admin API injects, for tests and demos of self-correction. One row (pk=1) is in force."""

    error_rate = models.FloatField(default=0.0, help_text="Share of requests answered with error_status (0..1).")
    error_status = models.PositiveSmallIntegerField(default=503)
    latency_ms = models.PositiveIntegerField(default=0)
    changed_shape = models.BooleanField(default=False, help_text="Answer with a different response shape.")
    swallow_writes = models.BooleanField(default=False, help_text="Answer writes with success but change nothing.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sandbox_fault_switch"

    def __str__(self) -> str:
        return "Admin API faults"
