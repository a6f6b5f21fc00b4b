"""The support views as the database describes them: the configured views (SUPPORT_SQL_VIEWS), their columns and
types, and the `COMMENT ON VIEW` / `COMMENT ON COLUMN` text as descriptions — introspected, so the model is told
what the company's database really offers, never a list written in code.

Read through the support role's own connection (the catalogue rows it can see are those of views it may read),
cached for a few minutes per process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agent.tools.sql_executor import SQLITE_TENANT_FUNCTION

CACHE_SECONDS = 300.0
RETRY_SECONDS = 30.0
PG_CATALOGUE_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum),
       obj_description(c.oid, 'pg_class')
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid
WHERE c.relname = ANY(%s) AND n.nspname = ANY(current_schemas(false)) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""
    comment: str = ""

    def describe(self) -> str:
        text = f"{self.name} {self.type}".strip()
        return f"{text} — {self.comment}" if self.comment else text


@dataclass(frozen=True)
class View:
    name: str
    comment: str = ""
    columns: list[Column] = field(default_factory=list)

    def describe(self) -> str:
        head = f"- {self.name}" + (f" — {self.comment}" if self.comment else "")
        if not self.columns:
            return f"{head} (its columns could not be read)"
        return head + "\n" + "\n".join(f"    {column.describe()}" for column in self.columns)


_lock = threading.Lock()
_cache: dict[tuple[str, tuple[str, ...]], tuple[float, list[View]]] = {}


def clear_view_cache() -> None:
    with _lock:
        _cache.clear()


def _postgres(dsn: str, views: list[str]) -> dict[str, View]:
    import psycopg

    found: dict[str, View] = {}
    with psycopg.connect(dsn, connect_timeout=5, application_name="run_sql catalogue") as conn:
        conn.read_only = True
        rows = conn.execute(PG_CATALOGUE_SQL, [views]).fetchall()
    for view, column, kind, column_comment, view_comment in rows:
        entry = found.setdefault(view, View(name=view, comment=(view_comment or "").strip()))
        entry.columns.append(Column(name=column, type=kind, comment=(column_comment or "").strip()))
    return found


def _sqlite(path: str, views: list[str]) -> dict[str, View]:
    found: dict[str, View] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # The views filter on the tenant function run_sql registers on its own connection; without it SQLite cannot
    # compile them, and pragma_table_info fails ("no such function"). It is never called here.
    conn.create_function(SQLITE_TENANT_FUNCTION, 0, lambda: None, deterministic=True)
    try:
        for view in views:
            columns = conn.execute("SELECT name, type FROM pragma_table_info(?)", [view]).fetchall()
            if columns:
                described = [Column(name=name, type=(kind or "").lower()) for name, kind in columns]
                found[view] = View(name=view, columns=described)
    finally:
        conn.close()
    return found


def view_catalogue(executor: Any) -> list[View]:
    """The executor's views in its (name) order, the same in every process, described by the database; a view the
    database does not show (or a database that cannot be read now) is listed by name only."""
    views = list(getattr(executor, "views", []))
    source = getattr(executor, "dsn", None) or str(getattr(executor, "path", ""))
    key = (source, tuple(views))
    with _lock:
        cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        found = _postgres(source, views) if getattr(executor, "dsn", None) else _sqlite(source, views)
    except Exception:  # the description must never stop the model from being called
        # A database that could not be read is asked again after RETRY_SECONDS, not on every model turn: each
        # attempt is a new connection (and a timeout when the database is down).
        catalogue = [View(name=view) for view in views]
        with _lock:
            _cache[key] = (time.monotonic() - CACHE_SECONDS + RETRY_SECONDS, catalogue)
        return catalogue
    # Read, even if it shows none of the views: kept, so each turn does not open a connection to ask again.
    catalogue = [found.get(view, View(name=view)) for view in views]
    with _lock:
        _cache[key] = (time.monotonic(), catalogue)
    return catalogue
