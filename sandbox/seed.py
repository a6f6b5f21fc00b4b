"""Realistic, deterministic sandbox data: the company's tenants, users, billing, configuration and logs.

Deterministic: every random choice comes from a generator seeded with the tenant id, and every time is relative
to `now`. Idempotent: rows with a natural key (tenant id, (tenant, email), (tenant, key), invoice number, the
tenant's subscription) are update_or_create'd, which also puts the demo scenarios back after a demo changed them
(on a database without the seeded tenants they are inserted in bulk instead). Rows that are a time series with no
natural key (login attempts, log events, cache resets) are regenerated for the seeded tenants, relative to the new
`now`; running twice leaves every count unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models, transaction
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

SEED = "agent-console-sandbox"
Plan = Tenant.Plan
Status = Tenant.Status


@dataclass(frozen=True)
class TenantSpec:
    id: str
    name: str
    plan: str
    status: str
    region: str
    currency: str


TENANTS = [
    # The six tenants behind the console's demo helpdesk organizations (console/demo.py).
    TenantSpec("acme", "Acme Analytics", Plan.GROWTH, Status.ACTIVE, "eu-west-1", "EUR"),
    TenantSpec("globex", "Globex Logistics", Plan.TRIAL, Status.TRIALING, "us-east-1", "USD"),
    TenantSpec("initech", "Initech Payroll", Plan.STARTER, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("umbrella", "Umbrella Health", Plan.ENTERPRISE, Status.ACTIVE, "eu-central-1", "EUR"),
    TenantSpec("hooli", "Hooli Search", Plan.GROWTH, Status.ACTIVE, "us-west-2", "USD"),
    TenantSpec("stark", "Stark Manufacturing", Plan.ENTERPRISE, Status.ACTIVE, "us-east-1", "USD"),
    # The rest of the customer base.
    TenantSpec("initrode", "Initrode Systems", Plan.STARTER, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("soylent", "Soylent Foods", Plan.GROWTH, Status.PAST_DUE, "us-west-2", "USD"),
    TenantSpec("wayne", "Wayne Enterprises", Plan.ENTERPRISE, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("wonka", "Wonka Confections", Plan.TRIAL, Status.TRIALING, "eu-west-1", "GBP"),
    TenantSpec("cyberdyne", "Cyberdyne Robotics", Plan.ENTERPRISE, Status.ACTIVE, "us-west-2", "USD"),
    TenantSpec("tyrell", "Tyrell Genetics", Plan.GROWTH, Status.ACTIVE, "us-west-2", "USD"),
    TenantSpec("vandelay", "Vandelay Industries", Plan.STARTER, Status.SUSPENDED, "us-east-1", "USD"),
    TenantSpec("dunder", "Dunder Mifflin Paper", Plan.STARTER, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("pied-piper", "Pied Piper", Plan.TRIAL, Status.TRIALING, "us-west-2", "USD"),
    TenantSpec("aperture", "Aperture Science", Plan.ENTERPRISE, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("massive-dynamic", "Massive Dynamic", Plan.GROWTH, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("oscorp", "Oscorp Labs", Plan.GROWTH, Status.PAST_DUE, "us-east-1", "USD"),
    TenantSpec("gringotts", "Gringotts Banking", Plan.ENTERPRISE, Status.ACTIVE, "eu-west-1", "GBP"),
    TenantSpec("monarch", "Monarch Solutions", Plan.STARTER, Status.CANCELED, "eu-central-1", "EUR"),
    TenantSpec("nakatomi", "Nakatomi Trading", Plan.GROWTH, Status.ACTIVE, "ap-northeast-1", "USD"),
    TenantSpec("duff", "Duff Beverages", Plan.STARTER, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("bluth", "Bluth Homes", Plan.TRIAL, Status.TRIALING, "us-west-2", "USD"),
    TenantSpec("prestige", "Prestige Worldwide", Plan.STARTER, Status.CANCELED, "us-east-1", "USD"),
    TenantSpec("sterling", "Sterling Cooper Media", Plan.GROWTH, Status.ACTIVE, "us-east-1", "USD"),
    TenantSpec("gekko", "Gekko Capital", Plan.ENTERPRISE, Status.ACTIVE, "us-east-1", "USD"),
]

# Trial ends relative to now; None is an open-ended partner trial.
TRIAL_ENDS_IN_DAYS: dict[str, int | None] = {"globex": 3, "wonka": 11, "pied-piper": 20, "bluth": None}
SEAT_PRICE_CENTS = {Plan.STARTER: 900, Plan.GROWTH: 1900, Plan.ENTERPRISE: 3900}
SEATS = {Plan.TRIAL: (3, 10), Plan.STARTER: (3, 15), Plan.GROWTH: (15, 80), Plan.ENTERPRISE: (80, 400)}
SUBSCRIPTION_STATUS = {
    Status.TRIALING: "trialing",
    Status.ACTIVE: "active",
    Status.PAST_DUE: "past_due",
    Status.SUSPENDED: "unpaid",
    Status.CANCELED: "canceled",
}
FIRST_NAMES = ["ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ines", "jon", "kofi", "lena", "mia"]
LAST_NAMES = ["garcia", "smith", "nguyen", "okafor", "muller", "rossi", "tanaka", "kowalski", "silva", "brown"]
PATHS = ["/api/dashboards", "/api/reports", "/api/exports", "/api/users", "/api/settings", "/api/search"]
DEMO_IP = "203.0.113.7"
# Users locked out by a burst of five failures: tenant -> (email, minutes ago of each failure, ip).
LOCKOUTS = {
    "initech": ("ops@initech.example", (52, 44, 37, 29, 23), DEMO_IP),
    "vandelay": ("billing@vandelay.example", (1809, 1807, 1806, 1804, 1802), "198.51.100.66"),
}
ACME_CACHE_KEY = "dashboard:summary"
STARK_BAD_LOCK_TIMEOUT = "0"


class _Rows:
    """Where the seed's rows with a natural key go. Over an earlier seed they are update_or_create'd one by one. On a
    database that holds none of the seeded tenants yet (each test's, a first demo's) nothing can clash: the same rows
    are collected and bulk-inserted at the end: ~10 statements instead of ~2,700."""

    def __init__(self, *, fresh: bool) -> None:
        self.fresh = fresh
        self.pending: dict[type[models.Model], list[models.Model]] = {}  # in first-seen order: referenced tables first

    def put(self, model: type[models.Model], defaults: dict[str, object], **lookup: object) -> models.Model:
        if not self.fresh:
            return model.objects.update_or_create(defaults=defaults, **lookup)[0]
        row = model(**lookup, **defaults)
        self.pending.setdefault(model, []).append(row)
        return row

    def save(self, row: models.Model, fields: list[str]) -> None:
        """Write fields changed after put(); a collected row is inserted with them."""
        if not self.fresh:
            row.save(update_fields=fields)

    def insert(self) -> None:
        for model, pending in self.pending.items():
            model.objects.bulk_create(pending)
        self.pending = {}


def _rng(tenant_id: str) -> random.Random:
    return random.Random(f"{SEED}:{tenant_id}")


def _month_start(now: datetime, months_back: int) -> datetime:
    index = now.year * 12 + (now.month - 1) - months_back
    return datetime(index // 12, index % 12 + 1, 1, 6, 0, tzinfo=UTC)


def _ip(rng: random.Random) -> str:
    return f"198.51.100.{rng.randint(2, 254)}"


class _Logs:
    """Collects one tenant's log lines in the company's format: `LEVEL event tenant=<id> key=value ...`."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.rows: list[LogEvent] = []

    def add(self, at: datetime, level: str, event: str, **fields: object) -> None:
        pairs = " ".join(f"{name}={value}" for name, value in {"tenant": self.tenant_id, **fields}.items())
        self.rows.append(
            LogEvent(
                log_group=settings.LOGS_GROUP_NAME,
                tenant_id=self.tenant_id,
                timestamp=at,
                level=level,
                message=f"{level} {event} {pairs}",
            )
        )


def _tenant(spec: TenantSpec, rng: random.Random, now: datetime, resets: list[datetime], rows: _Rows) -> Tenant:
    if spec.status == Status.TRIALING:
        days = TRIAL_ENDS_IN_DAYS.get(spec.id, 14)
        trial_ends_at = None if days is None else now + timedelta(days=days)
    else:
        trial_ends_at = now - timedelta(days=rng.randint(60, 700))
    return rows.put(
        Tenant,
        id=spec.id,
        defaults={
            "name": spec.name,
            "plan": spec.plan,
            "status": spec.status,
            "trial_ends_at": trial_ends_at,
            "cache_version": 1 + len(resets),
            "cache_reset_at": max(resets, default=None),
            "region": spec.region,
            "internal_notes": f"Seeded sandbox tenant ({spec.plan}, {spec.region}).",
        },
    )


def _cache_resets(spec: TenantSpec, rng: random.Random, now: datetime) -> list[datetime]:
    if spec.id == "acme":
        # Long before this morning's stale-cache errors: a reset is due.
        return [now - timedelta(days=days, hours=3) for days in (41, 27, 9)]
    return [now - timedelta(days=rng.randint(3, 90), minutes=rng.randint(0, 600)) for _ in range(rng.randint(0, 3))]


def _users(
    tenant: Tenant, rng: random.Random, now: datetime, logs: _Logs, rows: _Rows
) -> tuple[list[LoginAttempt], dict[str, TenantUser]]:
    domain = f"{tenant.pk}.example"
    people = [(f"admin@{domain}", "admin"), (f"ops@{domain}", "member"), (f"billing@{domain}", "billing")]
    for first in rng.sample(FIRST_NAMES, rng.randint(1, 3)):
        people.append((f"{first}.{rng.choice(LAST_NAMES)}@{domain}", "member"))
    locked_email = LOCKOUTS.get(tenant.pk, ("",))[0]  # its failures are scripted; no random ones on top
    attempts: list[LoginAttempt] = []
    users: dict[str, TenantUser] = {}
    for email, role in people:
        user = users[email] = rows.put(
            TenantUser,
            tenant=tenant,
            email=email,
            defaults={"role": role, "failed_logins": 0, "locked": False, "locked_at": None},
        )
        moments = sorted(now - timedelta(minutes=rng.randint(90, 48 * 60)) for _ in range(rng.randint(1, 4)))
        for at in moments:
            ip = _ip(rng)
            if rng.random() < 0.2 and email != locked_email:  # a mistyped password, then the right one
                attempts.append(
                    LoginAttempt(tenant=tenant, user=user, email=email, attempted_at=at, success=False, ip_address=ip)
                )
                logs.add(at, "WARN", "login_failed", email=email, ip=ip, reason="bad_password")
                at += timedelta(seconds=rng.randint(10, 50))
            attempts.append(
                LoginAttempt(tenant=tenant, user=user, email=email, attempted_at=at, success=True, ip_address=ip)
            )
            logs.add(at, "INFO", "login_succeeded", email=email, ip=ip)
        user.last_login_at = attempts[-1].attempted_at
        rows.save(user, ["last_login_at"])
    return attempts, users


def _lock_out(
    tenant: Tenant, user: TenantUser, failures: list[datetime], ip: str, logs: _Logs, rows: _Rows
) -> list[LoginAttempt]:
    email = user.email
    attempts = []
    for at in failures:
        attempts.append(
            LoginAttempt(tenant=tenant, user=user, email=email, attempted_at=at, success=False, ip_address=ip)
        )
        logs.add(at, "WARN", "login_failed", email=email, ip=ip, reason="bad_password")
    logs.add(failures[-1], "WARN", "account_locked", email=email, failed_logins=len(failures))
    user.failed_logins = len(failures)
    user.locked = True
    user.locked_at = failures[-1]
    rows.save(user, ["failed_logins", "locked", "locked_at"])
    return attempts


def _config(tenant: Tenant, spec: TenantSpec, rng: random.Random, rows: _Rows) -> int:
    values = {
        "dashboard.refresh_interval_seconds": rng.choice(["300", "600", "900"]),
        "exports.max_rows": rng.choice(["50000", "100000", "250000"]),
        "notifications.digest": rng.choice(["daily", "weekly", "off"]),
        "sso.enabled": "true" if spec.plan == Plan.ENTERPRISE else rng.choice(["true", "false"]),
    }
    if spec.plan == Plan.ENTERPRISE:
        values["terraform.state_lock_timeout"] = "300"
        values["terraform.workspace"] = f"{tenant.pk}-prod"
    if spec.id == "acme":
        values["cache.ttl_seconds"] = "3600"
    if spec.id == "stark":
        values["terraform.state_lock_timeout"] = STARK_BAD_LOCK_TIMEOUT  # the known-bad value of the config demo
    for key, value in values.items():
        rows.put(TenantConfig, tenant=tenant, key=key, defaults={"value": value})
    return len(values)


def _billing(tenant: Tenant, spec: TenantSpec, rng: random.Random, now: datetime, rows: _Rows) -> int:
    low, high = SEATS[spec.plan]
    seats = rng.randint(low, high)
    if spec.status == Status.TRIALING:
        amount = 0
        period_end = tenant.trial_ends_at
    else:
        amount = seats * SEAT_PRICE_CENTS[spec.plan]
        period_end = _month_start(now, -1) if spec.status != Status.CANCELED else _month_start(now, 1)
    rows.put(
        Subscription,
        tenant=tenant,
        defaults={
            "plan": spec.plan,
            "status": SUBSCRIPTION_STATUS[spec.status],
            "seats": seats,
            "monthly_amount_cents": amount,
            "currency": spec.currency,
            "current_period_end": period_end,
            "payment_method_last4": f"{rng.randint(0, 9999):04d}",
        },
    )
    prefix = f"INV-{tenant.pk.upper()}"
    if spec.status == Status.TRIALING:
        started = now - timedelta(days=rng.randint(5, 20))
        first_amount = seats * SEAT_PRICE_CENTS[Plan.GROWTH]
        invoices = [
            (f"{prefix}-TRIAL", 0, Invoice.Status.PAID, started, started),
            (f"{prefix}-FIRST", first_amount, Invoice.Status.DRAFT, started + timedelta(minutes=1), None),
        ]
    else:
        invoices = _monthly_invoices(spec, rng, now, prefix, amount)
    for number, amount_cents, status, issued_at, paid_at in invoices:
        rows.put(
            Invoice,
            number=number,
            defaults={
                "tenant": tenant,
                "amount_cents": amount_cents,
                "currency": spec.currency,
                "status": status,
                "issued_at": issued_at,
                "paid_at": paid_at,
            },
        )
    return len(invoices)


def _monthly_invoices(
    spec: TenantSpec, rng: random.Random, now: datetime, prefix: str, amount: int
) -> list[tuple[str, int, str, datetime, datetime | None]]:
    months = set(range(2, 8) if spec.status == Status.CANCELED else range(6))
    if spec.id == "umbrella":
        months.add(_last_october_back(now))
    rows = []
    for back in sorted(months):
        issued = _month_start(now, back)
        if issued > now:
            continue
        paid = issued + timedelta(days=rng.randint(0, 3), hours=rng.randint(0, 12))
        status = Invoice.Status.PAID
        if (back == 0 and spec.status in (Status.PAST_DUE, Status.SUSPENDED)) or paid > now:
            status, paid = Invoice.Status.OPEN, None
        elif back == 1 and spec.status == Status.SUSPENDED:
            status, paid = Invoice.Status.UNCOLLECTIBLE, None
        # Seat counts drift a little month to month.
        billed = amount if back == 0 else max(0, amount + rng.choice([-2, -1, 0, 0, 1]) * SEAT_PRICE_CENTS[spec.plan])
        rows.append((f"{prefix}-{issued:%Y%m}", billed, status, issued, paid))
        if spec.id == "umbrella" and issued.month == 10:
            # The double charge behind the demo billing ticket: the same invoice charged again four minutes later.
            duplicate_paid = paid + timedelta(minutes=4) if paid else None
            rows.append((f"{prefix}-{issued:%Y%m}-2", billed, status, issued + timedelta(minutes=4), duplicate_paid))
    return rows


def _last_october_back(now: datetime) -> int:
    """How many months back the latest October invoice (issued on the 1st) lies."""
    back = (now.month - 10) % 12
    return back + 12 if _month_start(now, back) > now else back


def _traffic(spec: TenantSpec, rng: random.Random, now: datetime, logs: _Logs) -> None:
    """Ordinary request logs over the last 48 hours, plus each tenant's characteristic noise."""
    for _ in range(rng.randint(20, 40)):
        at = now - timedelta(seconds=rng.randint(60, 48 * 3600))
        status = rng.choice([200] * 12 + [201, 304, 404])
        logs.add(
            at,
            "INFO",
            "request_completed",
            method=rng.choice(["GET", "GET", "GET", "POST"]),
            path=rng.choice(PATHS),
            status=status,
            duration_ms=rng.randint(8, 900),
            request_id=f"req-{rng.getrandbits(48):012x}",
        )
    for _ in range(rng.randint(0, 3)):
        at = now - timedelta(seconds=rng.randint(60, 48 * 3600))
        logs.add(at, "WARN", "slow_query", query="reports.monthly_rollup", duration_ms=rng.randint(2000, 9000))
    if spec.status in (Status.PAST_DUE, Status.SUSPENDED):
        at = now - timedelta(hours=rng.randint(2, 40))
        logs.add(at, "ERROR", "payment_failed", code="card_declined", detail='"insufficient funds"')


def _scenario_logs(spec: TenantSpec, rng: random.Random, now: datetime, logs: _Logs) -> None:
    if spec.id == "acme":
        for minutes in sorted(rng.sample(range(5, 6 * 60), 8)):
            logs.add(
                now - timedelta(minutes=minutes), "ERROR", "cache_error", key=ACME_CACHE_KEY, detail='"stale entry"'
            )
        logs.add(now - timedelta(hours=6, minutes=12), "WARN", "cache_stale", key=ACME_CACHE_KEY, age_seconds=21600)
    elif spec.id == "globex":
        logs.add(now - timedelta(hours=5), "INFO", "trial_reminder_sent", email="admin@globex.example", days_left=3)
    elif spec.id == "stark":
        for hours in (20, 9, 2):
            logs.add(
                now - timedelta(hours=hours, minutes=rng.randint(0, 59)),
                "ERROR",
                "terraform_apply_failed",
                workspace="stark-prod",
                detail='"could not acquire state lock: lock timeout is 0s"',
            )


@transaction.atomic
def sandbox_seed(*, now: datetime | None = None) -> dict[str, int]:
    """Create or refresh the sandbox's data and return how many rows of each kind the seed owns."""
    now = now or timezone.now()
    tenant_ids = [spec.id for spec in TENANTS]
    LoginAttempt.objects.filter(tenant_id__in=tenant_ids).delete()
    LogEvent.objects.filter(tenant_id__in=tenant_ids).delete()
    CacheReset.objects.filter(tenant_id__in=tenant_ids).delete()
    counts = {"tenants": 0, "subscriptions": 0, "invoices": 0, "config_values": 0}
    attempts: list[LoginAttempt] = []
    events: list[LogEvent] = []
    resets: list[CacheReset] = []
    rows = _Rows(fresh=not Tenant.objects.filter(id__in=tenant_ids).exists())
    for spec in TENANTS:
        rng = _rng(spec.id)
        logs = _Logs(spec.id)
        reset_times = _cache_resets(spec, rng, now)
        tenant = _tenant(spec, rng, now, reset_times, rows)
        resets += [CacheReset(tenant=tenant, performed_at=at) for at in reset_times]
        tenant_attempts, users = _users(tenant, rng, now, logs, rows)
        attempts += tenant_attempts
        if spec.id in LOCKOUTS:
            email, minutes_ago, ip = LOCKOUTS[spec.id]
            failures = [now - timedelta(minutes=minutes) for minutes in minutes_ago]
            attempts += _lock_out(tenant, users[email], failures, ip, logs, rows)
        counts["config_values"] += _config(tenant, spec, rng, rows)
        counts["invoices"] += _billing(tenant, spec, rng, now, rows)
        _traffic(spec, rng, now, logs)
        _scenario_logs(spec, rng, now, logs)
        events += logs.rows
        counts["tenants"] += 1
        counts["subscriptions"] += 1
    rows.insert()
    LoginAttempt.objects.bulk_create(attempts)
    LogEvent.objects.bulk_create(sorted(events, key=lambda event: event.timestamp))
    CacheReset.objects.bulk_create(resets)
    counts["tenant_users"] = TenantUser.objects.filter(tenant_id__in=tenant_ids).count()
    counts["login_attempts"] = len(attempts)
    counts["log_events"] = len(events)
    counts["cache_resets"] = len(resets)
    return counts
