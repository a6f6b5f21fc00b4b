"""Tools that act on the company's systems through its Admin API: four writes, each with a verifier, and a read.

A write's verify() never trusts the write's own answer: it re-reads state through the Admin API's GET endpoints
and compares it with what the write should have done (an API that answers 200 but changes nothing is caught).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.models import ConfigPatch
from agent.policy import Risk
from agent.tools import register
from agent.tools._summary import clip, money, plain
from agent.tools.admin_api import admin_api
from agent.tools.base import ErrorType, Observation, Tool, ToolContext, state_field

NOTHING_TO_VERIFY = "The write did not succeed, so there is no effect to verify."
NO_BASELINE = (
    "The state before this write was not recorded (the worker stopped mid-call), so re-reading cannot tell whether "
    "it took effect."
)
COULD_NOT_VERIFY = "Could not re-read the state to verify the write: {message}"
CACHE_NOT_RESET = (
    "Verification failed: expected cache_version above {before} and cache_reset_at at or after {started}; "
    "read cache_version {version} and cache_reset_at {reset_at}."
)
TRIAL_NOT_EXTENDED = (
    "Verification failed: expected trial_ends_at {expected} (previous end {previous} + {days} day(s)); "
    "read trial_ends_at {read}."
)
TRIAL_END_UNKNOWN = "Verification failed: the Admin API did not say when the extended trial ends."
USER_STILL_LOCKED = "Verification failed: expected {email} to be unlocked (locked false); read locked {locked}."
CONFIG_NOT_APPLIED = "Verification failed: expected config {key} = {expected!r}; read {read}."
UNKNOWN_PATCH = "There is no enabled config patch {patch_id!r}. Known patches: {known}."
NO_PATCHES = "none are configured"
PATCH_REASON = "Agent Console config patch {patch_id} ({title}), ticket {ticket_id}"
MAX_INVOICES = 10

TENANT_ID_FIELD = Field(
    pattern=r"^[A-Za-z0-9_-]{1,64}$",
    description="The ticket's tenant id. Calls naming any other tenant are refused.",
)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TenantArgs(_Args):
    tenant_id: str = TENANT_ID_FIELD


class ExtendTrialArgs(_Args):
    tenant_id: str = TENANT_ID_FIELD
    days: int = Field(ge=1, le=30, description="Days to add to the current trial end (1 to 30).")


class UnlockUserArgs(_Args):
    tenant_id: str = TENANT_ID_FIELD
    email: str = Field(
        pattern=r"^[^@\s/]+@[^@\s/]+\.[^@\s/]+$", max_length=254, description="The locked user's e-mail address."
    )


class ApplyConfigPatchArgs(_Args):
    tenant_id: str = TENANT_ID_FIELD
    patch_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,100}$", description="The id of a known config patch, e.g. from a runbook."
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str) and value:
        return _aware(datetime.fromisoformat(value))
    return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _reread_failed(failure: Observation) -> Observation:
    return Observation.failure(
        failure.error_type,
        COULD_NOT_VERIFY.format(message=failure.message),
        retryable=failure.retryable,
        **failure.meta,
    )


@register
class ResetTenantCache(Tool):
    name = "reset_tenant_cache"
    description = (
        "Reset the tenant's application cache (fixes stale dashboards and numbers that stopped updating). "
        "Reads the tenant's cache_version first, then resets; returns the new cache_version and cache_reset_at. "
        "The Admin API rate limits resets per tenant: a rate-limit failure says how long to wait."
    )
    args_schema = TenantArgs
    risk = Risk.WRITE
    idempotent_sends = True  # the Admin API honours Idempotency-Key
    verify_summary = "Re-reads the tenant: cache_version must have risen and cache_reset_at be after the call."

    def read_current(self, args: TenantArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            now = api.get_tenant(args.tenant_id)
        if isinstance(now, Observation):
            return now
        tenant = now.body
        return Observation.success(
            {
                "fields": [
                    state_field("cache_version", tenant.cache_version, f"above {tenant.cache_version}"),
                    state_field("cache_reset_at", _iso(tenant.cache_reset_at), "the time of the reset"),
                ]
            }
        )

    def run(self, args: TenantArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            before = api.get_tenant(args.tenant_id)
            if isinstance(before, Observation):
                return before
            reset = api.reset_cache(args.tenant_id, idempotency_key=ctx.idempotency_key)
        if isinstance(reset, Observation):
            # What the verifier compares with if the reset's outcome is unknown.
            return reset.with_meta(cache_version_before=before.body.cache_version)
        version_before = before.body.cache_version
        if reset.replayed:
            # A replay (the same action run again after a crash) answers with the original reset, which the read
            # above already saw. The version before that reset was below the one it produced.
            version_before = min(version_before, reset.body.cache_version - 1)
        return Observation.success(
            reset.body.model_dump(mode="json"), cache_version_before=version_before, **reset.meta()
        )

    def verify(self, args: TenantArgs, ctx: ToolContext, result: Observation, started_at: datetime) -> Observation:
        if not result.ok and not result.uncertain:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOTHING_TO_VERIFY)
        if "cache_version_before" not in result.meta:
            return Observation.failure(ErrorType.OUTCOME_UNKNOWN, NO_BASELINE)
        before = int(result.meta["cache_version_before"])
        # Whole seconds: an API that reports timestamps without microseconds must not fail a reset made in the
        # same second the call started.
        started = _aware(started_at).replace(microsecond=0)
        with admin_api() as api:
            now = api.get_tenant(args.tenant_id)
        if isinstance(now, Observation):
            return _reread_failed(now)
        tenant = now.body
        reset_at = _aware(tenant.cache_reset_at) if tenant.cache_reset_at else None
        if tenant.cache_version > before and reset_at is not None and reset_at >= started:
            return Observation.success(
                {"verified": True, "cache_version": tenant.cache_version, "cache_reset_at": _iso(reset_at)},
                cache_version_before=before,
            )
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            CACHE_NOT_RESET.format(
                before=before, started=started.isoformat(), version=tenant.cache_version, reset_at=_iso(reset_at)
            ),
            cache_version_before=before,
            cache_version=tenant.cache_version,
            cache_reset_at=_iso(reset_at),
        )


@register
class ExtendTrial(Tool):
    name = "extend_trial"
    description = (
        "Extend a trialing tenant's trial by 1 to 30 days. Only works while the tenant's status is 'trialing'; "
        "the Admin API refuses other tenants. Returns the new trial_ends_at and the previous one."
    )
    args_schema = ExtendTrialArgs
    risk = Risk.WRITE
    idempotent_sends = True  # the Admin API honours Idempotency-Key
    verify_summary = "Re-reads the tenant: trial_ends_at must be the previous end plus the days granted."

    def read_current(self, args: ExtendTrialArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            now = api.get_tenant(args.tenant_id)
        if isinstance(now, Observation):
            return now
        tenant = now.body
        end = _aware(tenant.trial_ends_at) if tenant.trial_ends_at else None
        after = _iso(end + timedelta(days=args.days)) if end else f"{args.days} day(s) from the time of the call"
        fields = [state_field("trial_ends_at", _iso(end), after)]
        if tenant.status != "trialing":
            fields.append(state_field("status", tenant.status, "trialing (the Admin API refuses other tenants)"))
        return Observation.success({"fields": fields})

    def run(self, args: ExtendTrialArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            # The trial end before the call: what the verifier compares with if the answer is lost.
            before = api.get_tenant(args.tenant_id)
            if isinstance(before, Observation):
                return before
            reply = api.extend_trial(args.tenant_id, days=args.days, idempotency_key=ctx.idempotency_key)
        baseline = _iso(_aware(before.body.trial_ends_at) if before.body.trial_ends_at else None)
        if isinstance(reply, Observation):
            return reply.with_meta(trial_ends_at_before=baseline)
        return Observation.success(reply.body.model_dump(mode="json"), trial_ends_at_before=baseline, **reply.meta())

    def verify(self, args: ExtendTrialArgs, ctx: ToolContext, result: Observation, started_at: datetime) -> Observation:
        if not result.ok and not result.uncertain:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOTHING_TO_VERIFY)
        if result.ok:
            previous = _parse(result.data.get("previous_trial_ends_at"))
            # A trial without an end gets one counted from the moment of the call, which only the API knows: then
            # the end it reported is the expectation.
            expected = previous + timedelta(days=args.days) if previous else _parse(result.data.get("trial_ends_at"))
            if expected is None:
                return Observation.failure(ErrorType.VERIFICATION_FAILED, TRIAL_END_UNKNOWN)
        elif "trial_ends_at_before" in result.meta:
            previous = _parse(result.meta["trial_ends_at_before"])
            expected = previous + timedelta(days=args.days) if previous else None
        else:
            return Observation.failure(ErrorType.OUTCOME_UNKNOWN, NO_BASELINE)
        with admin_api() as api:
            now = api.get_tenant(args.tenant_id)
        if isinstance(now, Observation):
            return _reread_failed(now)
        read = _aware(now.body.trial_ends_at) if now.body.trial_ends_at else None
        if expected is None:
            # An unknown outcome on a trial that had no end: any end now is the extension's.
            if read is not None:
                return Observation.success({"verified": True, "trial_ends_at": _iso(read)})
            return Observation.failure(
                ErrorType.VERIFICATION_FAILED,
                TRIAL_NOT_EXTENDED.format(expected="a set end", previous=None, days=args.days, read=None),
                trial_ends_at=None,
            )
        expected = expected.replace(microsecond=0)
        if read is not None and read.replace(microsecond=0) == expected:
            return Observation.success({"verified": True, "trial_ends_at": _iso(read)})
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            TRIAL_NOT_EXTENDED.format(
                expected=expected.isoformat(), previous=_iso(previous), days=args.days, read=_iso(read)
            ),
            expected_trial_ends_at=expected.isoformat(),
            trial_ends_at=_iso(read),
        )


@register
class UnlockUser(Tool):
    name = "unlock_user"
    description = (
        "Unlock a tenant user's account after too many failed logins. Refused when the user is not locked. "
        "Returns the user's locked flag and failed_logins after the unlock."
    )
    args_schema = UnlockUserArgs
    risk = Risk.WRITE
    idempotent_sends = True  # the Admin API honours Idempotency-Key
    verify_summary = "Re-reads the user: locked must be false."

    def read_current(self, args: UnlockUserArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            now = api.get_user(args.tenant_id, args.email)
        if isinstance(now, Observation):
            return now
        user = now.body
        return Observation.success(
            {
                "fields": [
                    state_field("locked", user.locked, False),
                    state_field("failed_logins", user.failed_logins, 0),
                ]
            }
        )

    def run(self, args: UnlockUserArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            reply = api.unlock_user(args.tenant_id, args.email, idempotency_key=ctx.idempotency_key)
        if isinstance(reply, Observation):
            return reply
        return Observation.success(reply.body.model_dump(mode="json"), **reply.meta())

    def verify(self, args: UnlockUserArgs, ctx: ToolContext, result: Observation, started_at: datetime) -> Observation:
        if not result.ok and not result.uncertain:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOTHING_TO_VERIFY)
        with admin_api() as api:
            now = api.get_user(args.tenant_id, args.email)
        if isinstance(now, Observation):
            return _reread_failed(now)
        if not now.body.locked:
            return Observation.success({"verified": True, "email": now.body.email, "locked": False})
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            USER_STILL_LOCKED.format(email=args.email, locked=str(now.body.locked).lower()),
            locked=now.body.locked,
        )


@register
class ApplyConfigPatch(Tool):
    name = "apply_config_patch"
    description = (
        "Apply one of the company's known configuration fixes (a config patch, named by its patch_id, e.g. "
        "'terraform-lock-timeout') to the tenant's configuration. Only admin-approved patches exist; an unknown "
        "patch_id is refused with the list of known ones. Returns the key, the new value and the previous value."
    )
    args_schema = ApplyConfigPatchArgs
    risk = Risk.WRITE
    idempotent_sends = True  # the Admin API honours Idempotency-Key
    verify_summary = "Re-reads the tenant's configuration: the patched key must hold the patch's value."

    def read_current(self, args: ApplyConfigPatchArgs, ctx: ToolContext) -> Observation:
        patch = ConfigPatch.objects.filter(patch_id=args.patch_id, enabled=True).first()
        if patch is None:
            return Observation.failure(ErrorType.REFUSED, UNKNOWN_PATCH.format(patch_id=args.patch_id, known="…"))
        with admin_api() as api:
            now = api.get_config(args.tenant_id)
        if isinstance(now, Observation):
            return now
        current = now.body.values.get(patch.config_key)
        return Observation.success({"fields": [state_field(patch.config_key, current, patch.value)]})

    def run(self, args: ApplyConfigPatchArgs, ctx: ToolContext) -> Observation:
        patch = ConfigPatch.objects.filter(patch_id=args.patch_id, enabled=True).first()
        if patch is None:
            known = list(ConfigPatch.objects.filter(enabled=True).values_list("patch_id", "title"))
            listing = ", ".join(f"{patch_id} ({title})" for patch_id, title in known) or NO_PATCHES
            return Observation.failure(
                ErrorType.REFUSED,
                UNKNOWN_PATCH.format(patch_id=args.patch_id, known=listing),
                known_patch_ids=[patch_id for patch_id, _ in known],
            )
        reason = PATCH_REASON.format(patch_id=patch.patch_id, title=patch.title, ticket_id=ctx.ticket_id)
        with admin_api() as api:
            reply = api.set_config(
                args.tenant_id,
                patch.config_key,
                value=patch.value,
                reason=reason,
                idempotency_key=ctx.idempotency_key,
            )
        sent = {"patch_id": patch.patch_id, "config_key": patch.config_key, "expected_value": patch.value}
        if isinstance(reply, Observation):
            return reply.with_meta(**sent)
        # What was sent is recorded, so the verifier compares with it even if an admin edits the patch meanwhile.
        return Observation.success(
            reply.body.model_dump(mode="json"),
            patch_id=patch.patch_id,
            config_key=patch.config_key,
            expected_value=patch.value,
            **reply.meta(),
        )

    def verify(
        self, args: ApplyConfigPatchArgs, ctx: ToolContext, result: Observation, started_at: datetime
    ) -> Observation:
        if not result.ok and not result.uncertain:
            return Observation.failure(ErrorType.VERIFICATION_FAILED, NOTHING_TO_VERIFY)
        if "config_key" in result.meta:
            key, expected = result.meta["config_key"], result.meta["expected_value"]
        else:  # the answer was lost with the worker: the patch itself says what was sent
            patch = ConfigPatch.objects.filter(patch_id=args.patch_id).first()
            if patch is None:
                return Observation.failure(ErrorType.OUTCOME_UNKNOWN, NO_BASELINE)
            key, expected = patch.config_key, patch.value
        with admin_api() as api:
            now = api.get_config(args.tenant_id)
        if isinstance(now, Observation):
            return _reread_failed(now)
        values = now.body.values
        if key in values and str(values[key]) == expected:
            return Observation.success({"verified": True, "key": key, "value": values[key]})
        read = f"{values[key]!r}" if key in values else "no such key"
        return Observation.failure(
            ErrorType.VERIFICATION_FAILED,
            CONFIG_NOT_APPLIED.format(key=key, expected=expected, read=read),
            config_key=key,
            expected_value=expected,
            value=values.get(key),
        )


@register
class GetBillingStatus(Tool):
    name = "get_billing_status"
    description = (
        "Read the tenant's billing: plan, account status, current subscription (plan, status, seats, amount, "
        f"period end) and the {MAX_INVOICES} most recent invoices (number, amount, status, issued/paid dates). "
        "Read-only."
    )
    args_schema = TenantArgs
    risk = Risk.READ

    def summarize(self, args: dict[str, Any], data: Any) -> str:
        if not isinstance(data, dict):
            return super().summarize(args, data)
        line = f"billing: plan {data.get('plan')}, account {data.get('status')}"
        sub = data.get("subscription")
        if isinstance(sub, dict):
            line += (
                f"; subscription {sub.get('plan')} {sub.get('status')}, {sub.get('seats')} seats, "
                f"{money(sub.get('monthly_amount_cents'), sub.get('currency'))}/month, "
                f"period ends {plain(sub.get('current_period_end'))}"
            )
        invoices = [i for i in data.get("invoices") or [] if isinstance(i, dict)]
        if invoices:
            line += "; invoices: " + ", ".join(
                f"{i.get('number')} {money(i.get('amount_cents'), i.get('currency'))} {i.get('status')} "
                f"(issued {plain(i.get('issued_at'))})"
                for i in invoices[:3]
            )
        return clip(line, 400)

    def run(self, args: TenantArgs, ctx: ToolContext) -> Observation:
        with admin_api() as api:
            reply = api.get_billing(args.tenant_id)
        if isinstance(reply, Observation):
            return reply
        data = reply.body.model_dump(mode="json")
        data["invoices_total"] = len(data["invoices"])
        data["invoices"] = data["invoices"][:MAX_INVOICES]
        return Observation.success(data, attempts=reply.attempts)
