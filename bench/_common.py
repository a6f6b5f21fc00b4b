"""What the bench scripts share: Django settings for a bench database, creating that database, figures.

Imported before Django is set up: it only sets environment defaults. Every script prints its figures and measures
its anchor in the same run (interleaved rounds), because this machine is shared and absolute times drift.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def configure(database: str, **env: str) -> None:
    """Production settings (DEBUG off) on a bench database of its own, unless DATABASE_URL says otherwise."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key-not-for-production")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")  # the bench speaks plain HTTP
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
    for key, value in env.items():
        os.environ.setdefault(key, value)


def setup(*, migrate: bool = True) -> None:
    """Create the database if missing, set Django up, migrate."""
    import django

    ensure_database()
    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def ensure_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return
    with psycopg.connect(**admin_dsn(db), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def admin_dsn(db: dict[str, Any], dbname: str = "postgres") -> dict[str, Any]:
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": dbname,
    }


def pct(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Sample:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Sample]:
    """Wall and CPU time (this process, every thread) of the block."""
    sample = Sample()
    wall, cpu = time.perf_counter(), time.process_time()
    yield sample
    sample.wall, sample.cpu = time.perf_counter() - wall, time.process_time() - cpu


class SqlCounter:
    """SQL statements and commits Django sends on the default connection while installed.

    A commit is the end of an outermost atomic block, or a statement run in autocommit mode (its own transaction).
    """

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        from django.db import connection

        self.statements += len(params) if many and params is not None else 1
        if not connection.in_atomic_block:
            self.commits += 1
        return execute(sql, params, many, context)

    @contextmanager
    def installed(self) -> Iterator[SqlCounter]:
        from django.db import connection

        connection.ensure_connection()
        original = connection.commit

        def commit() -> None:
            self.commits += 1
            original()

        connection.commit = commit  # Atomic.__exit__ calls connection.commit() when the outermost block ends
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection.commit


def machine_note() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine)"
