"""Every write the sandbox's Admin API makes, and the errors its business rules raise.

The errors live here rather than in their own module because the sandbox's files are few by design;
selectors import them from here (services never import selectors, so there is no cycle).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import IntegrityError, transaction

from agentconsole.errors import ApplicationError, ConflictError, NotFoundError
from sandbox.models import CacheReset, FaultSwitch, IdempotencyRecord, LogEvent, Tenant, TenantConfig, TenantUser

TENANT_NOT_FOUND = "No tenant has the id {tenant_id!r}."
USER_NOT_FOUND = "Tenant {tenant_id!r} has no user with the email {email!r}."
CONFIG_KEY_NOT_FOUND = "Tenant {tenant_id!r} has no configuration key {key!r}; only existing keys can be changed."
CACHE_RESET_TOO_SOON = (
    "The cache of tenant {tenant_id!r} was reset less than {interval} seconds ago; retry in {retry_after} seconds."
)
INVALID_DAYS = "A trial can be extended by 1 to {maximum} days, not {days}."
TRIAL_NOT_ACTIVE = "Tenant {tenant_id!r} is {status!r}; only a tenant that is 'trialing' can have its trial extended."
USER_NOT_LOCKED = "User {email!r} of tenant {tenant_id!r} is not locked."
REASON_REQUIRED = "A configuration change needs a reason."
IDEMPOTENCY_KEY_REUSED = (
    "The Idempotency-Key {key!r} was already used for another request ({method} {path}); a key replays only the "
    "same method, path and body. Use a new key for a new request."
)
INVALID_FAULTS = "Invalid fault settings: {problems}."
CLAIM_OUTSIDE_TRANSACTION = "idempotency_record_claim must run inside the transaction that performs the effect."

TRIAL_EXTENSION_MAX_DAYS = 30
FAULT_LATENCY_MAX_MS = 60_000


class AdminApiError(ApplicationError):
    """A rule of the Admin API said no. `code` is the snake_case error code the API answers with."""

    code: ClassVar[str] = "bad_request"


class TenantNotFound(AdminApiError, NotFoundError):
    code = "tenant_not_found"


class UserNotFound(AdminApiError, NotFoundError):
    code = "user_not_found"


class ConfigKeyNotFound(AdminApiError, NotFoundError):
    code = "config_key_not_found"


class UserNotLocked(AdminApiError, ConflictError):
    code = "user_not_locked"


class InvalidDays(AdminApiError):
    status_code = 422
    code = "invalid_days"


class TrialNotActive(AdminApiError):
    status_code = 422
    code = "trial_not_active"


class ReasonRequired(AdminApiError):
    status_code = 422
    code = "reason_required"


class InvalidFaults(AdminApiError):
    status_code = 422
    code = "invalid_faults"


class IdempotencyKeyReused(AdminApiError):
    status_code = 422
    code = "idempotency_key_reused"


class CacheResetRateLimited(AdminApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, extra={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class TrialExtension:
    tenant: Tenant
    previous_trial_ends_at: datetime | None


@dataclass(frozen=True)
class ConfigChange:
    tenant_id: str
    key: str
    value: str
    previous_value: str


def _tenant_for_update(tenant_id: str) -> Tenant:
    tenant = Tenant.objects.select_for_update().filter(pk=tenant_id).first()
    if tenant is None:
        raise TenantNotFound(TENANT_NOT_FOUND.format(tenant_id=tenant_id))
    return tenant


def _log_value(value: object) -> str:
    text = str(value)
    # Messages are single lines of key=value pairs: quote anything that would break that (spaces, quotes, newlines).
    if not text or any(char.isspace() or char in '"=' for char in text):
        return json.dumps(text)
    return text


def _admin_log(*, tenant_id: str, event: str, at: datetime, **fields: object) -> None:
    """Write the line the company's app logs when the Admin API changes something, as the real one does."""
    pairs = " ".join(f"{name}={_log_value(value)}" for name, value in {"tenant": tenant_id, **fields}.items())
    LogEvent.objects.create(
        log_group=settings.LOGS_GROUP_NAME,
        tenant_id=tenant_id,
        timestamp=at,
        level="INFO",
        message=f"INFO {event} {pairs} source=admin_api",
    )


@transaction.atomic
def tenant_cache_reset(*, tenant_id: str, now: datetime) -> Tenant:
    """Bump the tenant's cache version and record the reset; refuse a reset sooner than the minimum interval."""
    tenant = _tenant_for_update(tenant_id)
    interval = settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS
    last = (
        CacheReset.objects.filter(tenant=tenant)
        .order_by("-performed_at")
        .values_list("performed_at", flat=True)
        .first()
    )
    if last is not None and interval:
        remaining = interval - (now - last).total_seconds()
        if remaining > 0:
            retry_after = max(1, math.ceil(remaining))
            raise CacheResetRateLimited(
                CACHE_RESET_TOO_SOON.format(tenant_id=tenant_id, interval=interval, retry_after=retry_after),
                retry_after=retry_after,
            )
    tenant.cache_version += 1
    tenant.cache_reset_at = now
    tenant.full_clean()
    tenant.save(update_fields=["cache_version", "cache_reset_at"])
    CacheReset.objects.create(tenant=tenant, performed_at=now)
    _admin_log(tenant_id=tenant.pk, event="cache_reset", at=now, cache_version=tenant.cache_version)
    return tenant


@transaction.atomic
def tenant_trial_extend(*, tenant_id: str, days: int, now: datetime) -> TrialExtension:
    """Move a trialing tenant's trial end `days` later (from now when it has none)."""
    if not 1 <= days <= TRIAL_EXTENSION_MAX_DAYS:
        raise InvalidDays(INVALID_DAYS.format(maximum=TRIAL_EXTENSION_MAX_DAYS, days=days))
    tenant = _tenant_for_update(tenant_id)
    if tenant.status != Tenant.Status.TRIALING:
        raise TrialNotActive(TRIAL_NOT_ACTIVE.format(tenant_id=tenant_id, status=tenant.status))
    previous = tenant.trial_ends_at
    tenant.trial_ends_at = (previous or now) + timedelta(days=days)
    tenant.full_clean()
    tenant.save(update_fields=["trial_ends_at"])
    _admin_log(
        tenant_id=tenant.pk, event="trial_extended", at=now, days=days, trial_ends_at=tenant.trial_ends_at.isoformat()
    )
    return TrialExtension(tenant=tenant, previous_trial_ends_at=previous)


@transaction.atomic
def tenant_user_unlock(*, tenant_id: str, email: str, now: datetime) -> TenantUser:
    """Unlock a locked user and clear the failed-login count."""
    _tenant_for_update(tenant_id)
    user = (
        TenantUser.objects.select_for_update().filter(tenant_id=tenant_id, email__iexact=email).order_by("id").first()
    )
    if user is None:
        raise UserNotFound(USER_NOT_FOUND.format(tenant_id=tenant_id, email=email))
    if not user.locked:
        raise UserNotLocked(USER_NOT_LOCKED.format(tenant_id=tenant_id, email=user.email))
    user.locked = False
    user.failed_logins = 0
    user.locked_at = None
    user.full_clean()
    user.save(update_fields=["locked", "failed_logins", "locked_at"])
    _admin_log(tenant_id=tenant_id, event="user_unlocked", at=now, email=user.email)
    return user


@transaction.atomic
def tenant_config_set(*, tenant_id: str, key: str, value: str, reason: str, now: datetime) -> ConfigChange:
    """Change the value of an existing configuration key. New keys cannot be created through the Admin API."""
    if not reason.strip():
        raise ReasonRequired(REASON_REQUIRED)
    _tenant_for_update(tenant_id)
    entry = TenantConfig.objects.select_for_update().filter(tenant_id=tenant_id, key=key).first()
    if entry is None:
        raise ConfigKeyNotFound(CONFIG_KEY_NOT_FOUND.format(tenant_id=tenant_id, key=key))
    previous = entry.value
    entry.value = value
    entry.full_clean()
    entry.save(update_fields=["value", "updated_at"])
    _admin_log(
        tenant_id=tenant_id, event="config_changed", at=now, key=key, previous=previous, value=value, reason=reason
    )
    return ConfigChange(tenant_id=tenant_id, key=key, value=value, previous_value=previous)


def fault_switch_validate(*, error_rate: float, error_status: int, latency_ms: int) -> None:
    """Raise InvalidFaults unless the settings make sense (shared by the Admin API and the Django admin)."""
    problems = []
    if not 0.0 <= error_rate <= 1.0:
        problems.append(f"error_rate must be between 0 and 1, not {error_rate}")
    if not 400 <= error_status <= 599:
        problems.append(f"error_status must be an HTTP error status (400-599), not {error_status}")
    if not 0 <= latency_ms <= FAULT_LATENCY_MAX_MS:
        problems.append(f"latency_ms must be between 0 and {FAULT_LATENCY_MAX_MS}, not {latency_ms}")
    if problems:
        raise InvalidFaults(INVALID_FAULTS.format(problems="; ".join(problems)))


@transaction.atomic
def fault_switch_set(
    *, error_rate: float, error_status: int, latency_ms: int, changed_shape: bool, swallow_writes: bool
) -> FaultSwitch:
    """Put the given faults in force (the one row, pk=1). All defaults mean no faults."""
    fault_switch_validate(error_rate=error_rate, error_status=error_status, latency_ms=latency_ms)
    switch = FaultSwitch.objects.select_for_update().filter(pk=1).first() or FaultSwitch(pk=1)
    switch.error_rate = error_rate
    switch.error_status = error_status
    switch.latency_ms = latency_ms
    switch.changed_shape = changed_shape
    switch.swallow_writes = swallow_writes
    switch.full_clean()
    switch.save()
    return switch


def idempotency_record_claim(*, key: str, method: str, path: str, request_hash: str) -> tuple[IdempotencyRecord, bool]:
    """Insert the key's record first, or return the one already stored for the same request (second value False).

    Raises IdempotencyKeyReused when the key was stored for a different method, path or body. Must run inside the
    transaction that performs the effect: a concurrent request with the same key blocks on the unique index until
    that transaction ends, then finds the stored outcome instead of acting twice.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(CLAIM_OUTSIDE_TRANSACTION)
    record = IdempotencyRecord(
        key=key, method=method, path=path[:300], request_hash=request_hash, status_code=0, response_body={}
    )
    # The unique index is the arbiter under concurrency, so the model's own uniqueness query is skipped; the
    # response body is filled in by idempotency_record_complete.
    record.full_clean(exclude=["response_body"], validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            record.save(force_insert=True)
    except IntegrityError:
        stored = IdempotencyRecord.objects.get(key=key)
        if stored.request_hash != request_hash:
            raise IdempotencyKeyReused(
                IDEMPOTENCY_KEY_REUSED.format(key=key, method=stored.method, path=stored.path)
            ) from None
        return stored, False
    return record, True


def idempotency_record_complete(*, record: IdempotencyRecord, status_code: int, response_body: object) -> None:
    """Store the outcome a replay of the key will answer with."""
    record.status_code = status_code
    record.response_body = response_body
    record.full_clean(validate_unique=False, validate_constraints=False)
    record.save(update_fields=["status_code", "response_body"])
