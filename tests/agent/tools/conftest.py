"""Fixtures of the run_sql tests (prefixed sql_): two tenants' rows in PostgreSQL and in a migrated SQLite file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from agent.tools.sql_executor import PostgresExecutor, support_sql_executor

BOUND = "acme"  # the ticket's tenant
OTHER = "globex"  # a tenant the model must never read
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]

Rows = dict[str, list[dict[str, Any]]]


def sql_dataset() -> Rows:
    """Two tenants, each with something support may see and something nobody should (hashes, notes, cards)."""
    return {
        "sandbox_tenant": [
            {
                "id": BOUND,
                "name": "Acme Corp",
                "plan": "growth",
                "status": "active",
                "trial_ends_at": None,
                "cache_version": 7,
                "cache_reset_at": T0,
                "region": "eu-west-1",
                "internal_notes": "acme internal: churn risk",
                "created_at": T0 - timedelta(days=400),
            },
            {
                "id": OTHER,
                "name": "Globex",
                "plan": "enterprise",
                "status": "past_due",
                "trial_ends_at": None,
                "cache_version": 3,
                "cache_reset_at": None,
                "region": "us-east-1",
                "internal_notes": "globex internal: acquisition talks",
                "created_at": T0 - timedelta(days=90),
            },
        ],
        "sandbox_tenant_user": [
            _user(1, BOUND, "alice@acme.test", locked=True, failed_logins=5),
            _user(2, BOUND, "bob@acme.test"),
            _user(3, OTHER, "hank@globex.test"),
        ],
        "sandbox_login_attempt": [
            _attempt(1, BOUND, 1, "alice@acme.test", minutes=30, success=False),
            _attempt(2, BOUND, 1, "alice@acme.test", minutes=20, success=False),
            _attempt(3, BOUND, 2, "bob@acme.test", minutes=10, success=True),
            _attempt(4, OTHER, 3, "hank@globex.test", minutes=5, success=False),
        ],
        "sandbox_subscription": [
            _subscription(1, BOUND, "growth", card="4242"),
            _subscription(2, OTHER, "enterprise", card="1881"),
        ],
        "sandbox_invoice": [
            _invoice(1, BOUND, "INV-ACME-1", 4900, "paid", days=40),
            _invoice(2, BOUND, "INV-ACME-2", 12900, "open", days=10),
            _invoice(3, OTHER, "INV-GLOBEX-1", 99000, "open", days=5),
        ],
        "sandbox_tenant_config": [
            {"id": 1, "tenant_id": BOUND, "key": "cache.ttl_seconds", "value": "300", "updated_at": T0},
            {"id": 2, "tenant_id": BOUND, "key": "feature.sso", "value": "on", "updated_at": T0},
            {"id": 3, "tenant_id": OTHER, "key": "feature.sso", "value": "off", "updated_at": T0},
        ],
    }


# What must never reach the model: the other tenant's data and the columns no view exposes.
SECRETS = ("globex", "hank", "INV-GLOBEX", "churn risk", "acquisition", "secret-hash", "4242", "1881")


def _user(pk: int, tenant: str, email: str, *, locked: bool = False, failed_logins: int = 0) -> dict[str, Any]:
    return {
        "id": pk,
        "tenant_id": tenant,
        "email": email,
        "role": "admin" if pk == 1 else "member",
        "failed_logins": failed_logins,
        "locked": locked,
        "locked_at": T0 if locked else None,
        "last_login_at": T0 - timedelta(days=1),
        "password_hash": f"pbkdf2_sha256$600000${tenant}-secret-hash",
    }


def _attempt(pk: int, tenant: str, user: int, email: str, *, minutes: int, success: bool) -> dict[str, Any]:
    return {
        "id": pk,
        "tenant_id": tenant,
        "user_id": user,
        "email": email,
        "attempted_at": T0 - timedelta(minutes=minutes),
        "success": success,
        "ip_address": "203.0.113.7",
    }


def _subscription(pk: int, tenant: str, plan: str, *, card: str) -> dict[str, Any]:
    return {
        "id": pk,
        "tenant_id": tenant,
        "plan": plan,
        "status": "active",
        "seats": 25,
        "monthly_amount_cents": 12900,
        "currency": "EUR",
        "current_period_end": T0 + timedelta(days=20),
        "payment_method_last4": card,
    }


def _invoice(pk: int, tenant: str, number: str, cents: int, status: str, *, days: int) -> dict[str, Any]:
    return {
        "id": pk,
        "tenant_id": tenant,
        "number": number,
        "amount_cents": cents,
        "currency": "EUR",
        "status": status,
        "issued_at": T0 - timedelta(days=days),
        "paid_at": T0 - timedelta(days=days - 2) if status == "paid" else None,
    }


def sql_login_attempts(count: int, *, first_id: int = 100) -> Rows:
    return {
        "sandbox_login_attempt": [
            _attempt(first_id + n, BOUND, 2, "bob@acme.test", minutes=60 + n, success=True) for n in range(count)
        ]
    }


def _insert(execute: Callable[[str, list[Any]], object], rows: Rows, *, placeholder: str) -> None:
    for table, table_rows in rows.items():
        for row in table_rows:
            columns = ", ".join(row)
            marks = ", ".join([placeholder] * len(row))
            execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))  # noqa: S608


def _sqlite_value(value: Any) -> Any:
    # Stored as Django stores them on SQLite: UTC datetimes as "YYYY-MM-DD HH:MM:SS", booleans as 0/1.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, bool):
        return int(value)
    return value


@pytest.fixture
def sql_pg_rows(transactional_db: None) -> Callable[[Rows], None]:
    """Insert rows into PostgreSQL, committed: run_sql's own connection sees only committed data."""

    def insert(rows: Rows) -> None:
        with connection.cursor() as cursor:
            _insert(cursor.execute, rows, placeholder="%s")

    return insert


@pytest.fixture
def sql_pg_data(sql_pg_rows: Callable[[Rows], None]) -> Callable[[Rows], None]:
    """Both tenants' rows in the test database; returns the inserter for more."""
    sql_pg_rows(sql_dataset())
    return sql_pg_rows


@pytest.fixture(scope="session")
def sql_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated by manage.py, as the embedded default deployment has it."""
    directory = tmp_path_factory.mktemp("sqlite")
    path = directory / "x.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sandbox.settings_demo",
        "DATABASE_URL": f"sqlite:///{path}",
        "DJANGO_DEBUG": "true",
        "AGENTCONSOLE_VAR_DIR": str(directory),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


class SqliteDb:
    def __init__(self, path: Path) -> None:
        self.path = path

    def insert(self, rows: Rows) -> None:
        with sqlite3.connect(self.path) as conn:
            _insert(lambda sql, values: conn.execute(sql, [_sqlite_value(v) for v in values]), rows, placeholder="?")
        conn.close()

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def sql_sqlite_db(sql_sqlite_template: Path, tmp_path: Path) -> SqliteDb:
    """A fresh copy of the migrated file holding both tenants' rows."""
    path = tmp_path / "support.sqlite3"
    shutil.copyfile(sql_sqlite_template, path)
    db = SqliteDb(path)
    db.insert(sql_dataset())
    return db


@pytest.fixture
def sql_on_sqlite(sql_sqlite_db: SqliteDb, settings: Any) -> Iterator[SqliteDb]:
    """Point run_sql at the SQLite file, as SUPPORT_SQL_DATABASE_URL would in a deployment."""
    settings.SUPPORT_SQL_DATABASE_URL = f"sqlite:///{sql_sqlite_db.path}"
    yield sql_sqlite_db


@pytest.fixture
def sql_role_dsn() -> str:
    """The DSN run_sql derives for the support role on the test database."""
    executor = support_sql_executor()
    assert isinstance(executor, PostgresExecutor)
    assert settings.SUPPORT_SQL_ROLE in executor.dsn
    return executor.dsn
