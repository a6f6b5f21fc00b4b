"""Request and response bodies of the sandbox's Admin API (its OpenAPI document is built from these)."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema
from pydantic import StrictBool, StrictInt, StrictStr


class ErrorDetailOut(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorDetailOut


class TenantOut(Schema):
    tenant_id: str
    name: str
    plan: str
    status: str
    trial_ends_at: datetime | None
    cache_version: int
    cache_reset_at: datetime | None


class CacheResetOut(Schema):
    tenant_id: str
    cache_version: int
    cache_reset_at: datetime


class TrialExtendIn(Schema):
    days: StrictInt


class TrialExtendOut(Schema):
    tenant_id: str
    trial_ends_at: datetime
    previous_trial_ends_at: datetime | None


class UserOut(Schema):
    tenant_id: str
    email: str
    locked: bool
    failed_logins: int
    locked_at: datetime | None


class ConfigOut(Schema):
    tenant_id: str
    values: dict[str, str]


class ConfigSetIn(Schema):
    value: StrictStr = Field(max_length=500)
    reason: StrictStr = Field(max_length=1000)


class ConfigSetOut(Schema):
    tenant_id: str
    key: str
    value: str
    previous_value: str


class SubscriptionOut(Schema):
    plan: str
    status: str
    seats: int
    monthly_amount_cents: int
    currency: str
    current_period_end: datetime | None


class InvoiceOut(Schema):
    number: str
    amount_cents: int
    currency: str
    status: str
    issued_at: datetime
    paid_at: datetime | None


class BillingOut(Schema):
    tenant_id: str
    plan: str
    status: str
    subscription: SubscriptionOut | None
    invoices: list[InvoiceOut]


class FaultsIn(Schema):
    """Every field is optional: an empty body (`{}`) turns every fault off."""

    error_rate: float = 0.0
    error_status: StrictInt = 503
    latency_ms: StrictInt = 0
    changed_shape: StrictBool = False
    swallow_writes: StrictBool = False


class FaultsOut(Schema):
    error_rate: float
    error_status: int
    latency_ms: int
    changed_shape: bool
    swallow_writes: bool
