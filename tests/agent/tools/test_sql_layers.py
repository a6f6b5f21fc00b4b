"""Every database layer under run_sql holding on its own, with the guard skipped: PostgreSQL's role and read-only
transaction, SQLite's authorizer and read-only handle."""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from agent.tools.sql_catalogue import SUPPORT_VIEW_COLUMNS
from agent.tools.sql_executor import (
    BINDING_REJECTED,
    ROLE_TOO_POWERFUL,
    TENANT_SIGNATURE_SETTING,
    DatabaseMisconfigured,
    PostgresExecutor,
    QueryDenied,
    QueryFailed,
    QueryTimedOut,
    SqlExecutionError,
    SqliteExecutor,
    sqlite_authorizer,
    sqlite_readonly_uri,
    sqlite_tenant_copies,
    support_sql_executor,
    tenant_binding_key,
    tenant_signature,
)
from tests.agent.tools.conftest import BOUND, OTHER, ROOT, SqliteDb, sql_login_attempts
from tests.agent.tools.test_sql_tool import SLOW_QUERY, assert_no_secrets, pg, pg_snapshot, sqlite_snapshot

# The support views run_sql reads here are the sandbox company's (sandbox/sql/), over its tables.
pytestmark = pytest.mark.company


# --- PostgreSQL, each layer without the guard -------------------------------------------------------------------


WRITE_DENIED = "permission denied|read-only transaction"  # whichever of the two layers PostgreSQL checks first
RAW_DENIED_PG = [
    ("base-table", "SELECT email, password_hash FROM sandbox_tenant_user", "permission denied"),
    ("binding-key", "SELECT * FROM support_sql_binding_key", "permission denied"),
    ("insert-into-view", "INSERT INTO support_tenant_users (email) VALUES ('x@evil.test')", WRITE_DENIED),
    ("update-view", "UPDATE support_tenant_users SET locked = false", WRITE_DENIED),
    ("delete-base-table", "DELETE FROM sandbox_invoice", WRITE_DENIED),
    ("create-table", "CREATE TABLE loot (a int)", WRITE_DENIED),
    ("drop-view", "DROP VIEW support_invoices", WRITE_DENIED),
    ("pg-read-file", "SELECT pg_read_file('/etc/passwd')", "permission denied"),
    ("pg-ls-dir", "SELECT pg_ls_dir('.')", "permission denied"),
    ("lo-import", "SELECT lo_import('/etc/passwd')", "permission denied"),
    ("lo-export", "SELECT lo_export(1, '/tmp/loot')", "permission denied"),
    ("pg-shadow", "SELECT usename, passwd FROM pg_shadow", "permission denied"),
    ("set-role", "SET ROLE postgres", "permission denied"),
    ("copy-to-program", "COPY (SELECT 1) TO PROGRAM 'true'", "pg_execute_server_program"),
    ("copy-to-stdout", "COPY (SELECT * FROM support_tenant_users) TO STDOUT", "COPY"),
    ("several-statements", "SELECT 1; DELETE FROM sandbox_invoice", "multiple commands"),
    (
        "cte-shadowing-a-view",
        "WITH support_tenant_users AS (SELECT * FROM sandbox_tenant_user) SELECT * FROM support_tenant_users",
        "permission denied",
    ),
]


@pg
@pytest.mark.parametrize(("name", "sql", "fragment"), RAW_DENIED_PG, ids=[case[0] for case in RAW_DENIED_PG])
def test_it_holds_at_the_role_and_read_only_transaction_without_the_guard(
    sql_pg_data: Callable, name: str, sql: str, fragment: str
) -> None:
    before = pg_snapshot()

    with pytest.raises(QueryDenied) as denied:
        support_sql_executor().run(sql, tenant_id=BOUND)

    assert re.search(fragment, denied.value.message)
    assert pg_snapshot() == before


RAW_REBINDS = [
    (
        "set-config-in-where",
        "SELECT * FROM support_tenant_users WHERE set_config('agentconsole.tenant_id', 'globex', true) IS NOT NULL",
    ),
    (
        "set-config-before-the-scan",
        "SELECT u.* FROM (SELECT set_config('agentconsole.tenant_id', 'globex', true) AS x) AS s "
        "CROSS JOIN support_tenant_users AS u WHERE s.x IS NOT NULL",
    ),
    (
        "set-config-with-a-forged-signature",
        "SELECT i.* FROM (SELECT set_config('agentconsole.tenant_id', 'globex', true) AS t, "
        "set_config('agentconsole.tenant_signature', repeat('0', 64), true) AS s) AS b "
        "CROSS JOIN support_invoices AS i WHERE b.t IS NOT NULL AND b.s IS NOT NULL",
    ),
    ("where-other-tenant", "SELECT * FROM support_tenant_users WHERE tenant_id = 'globex' OR true"),
    (
        "union-over-views",
        "SELECT tenant_id, email FROM support_tenant_users UNION SELECT tenant_id, email FROM support_login_attempts",
    ),
]


@pg
@pytest.mark.parametrize(("name", "sql"), RAW_REBINDS, ids=[case[0] for case in RAW_REBINDS])
def test_it_keeps_the_tenant_when_raw_sql_rebinds_it_on_postgresql(sql_pg_data: Callable, name: str, sql: str) -> None:
    result = support_sql_executor().run(sql, tenant_id=BOUND)

    assert_no_secrets(result.as_data())
    tenant = result.columns.index("tenant_id")
    assert all(row[tenant] == BOUND for row in result.rows)


@pg
def test_it_leaks_nothing_through_an_error_raised_after_rebinding(sql_pg_data: Callable) -> None:
    leak = (
        "DO $$ DECLARE found text; BEGIN "
        "PERFORM set_config('agentconsole.tenant_id', 'globex', true); "
        "SELECT string_agg(email, ',') INTO found FROM support_tenant_users; "
        "RAISE EXCEPTION 'leak: %', found; END $$"
    )

    with pytest.raises(QueryFailed) as failed:
        support_sql_executor().run(leak, tenant_id=BOUND)

    assert "leak: <NULL>" in failed.value.message


@pg
def test_it_stops_pg_sleep_at_the_statement_timeout(sql_pg_data: Callable, settings: Any) -> None:
    settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS = 500
    started = time.monotonic()

    with pytest.raises(QueryTimedOut):
        support_sql_executor().run("SELECT pg_sleep(5)", tenant_id=BOUND)

    assert 0.4 < time.monotonic() - started < 2.5


@pg
def test_it_gives_the_role_login_and_nothing_more(sql_pg_data: Callable, sql_role_dsn: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            [settings.SUPPORT_SQL_ROLE],
        )
        attributes = cursor.fetchone()
    with psycopg.connect(sql_role_dsn) as conn:
        read_only = conn.execute("SHOW default_transaction_read_only").fetchone()[0]
        timeout = conn.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0]

    assert attributes == (True, False, False, False, False, False, False)
    assert read_only == "on"
    assert timeout == str(settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS)


ROLE_DENIED = [
    "INSERT INTO support_tenant_users (tenant_id, email) VALUES ('acme', 'x@evil.test')",
    "UPDATE support_invoices SET status = 'paid'",
    "DELETE FROM support_tenant_config",
    "INSERT INTO sandbox_tenant_config (tenant_id, key, value, updated_at) VALUES ('acme', 'k', 'v', now())",
    "SELECT password_hash FROM sandbox_tenant_user",
    "SELECT * FROM support_sql_binding_key",
    "CREATE TABLE public.loot (a int)",
    "SELECT pg_read_file('/etc/passwd')",
    "SET ROLE postgres",
]


@pg
@pytest.mark.parametrize("sql", ROLE_DENIED)
def test_it_denies_the_role_all_but_reading_the_views_even_read_write(
    sql_pg_data: Callable, sql_role_dsn: str, sql: str
) -> None:
    with psycopg.connect(sql_role_dsn) as conn:
        conn.read_only = False  # BEGIN READ WRITE: the role's grants alone must hold
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)
        conn.rollback()


@pg
def test_it_shows_the_views_no_tenant_without_a_valid_signature(sql_pg_data: Callable, sql_role_dsn: str) -> None:
    key = tenant_binding_key()
    bindings = {
        "unsigned": (BOUND, None),
        "forged": (BOUND, "0" * 64),
        "signature-of-another-tenant": (OTHER, tenant_signature(BOUND, key)),
        "signed": (BOUND, tenant_signature(BOUND, key)),
    }
    counts = {}
    with psycopg.connect(sql_role_dsn) as conn:
        for name, (tenant, signature) in bindings.items():
            conn.execute(
                "SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
                [settings.SUPPORT_SQL_TENANT_SETTING, tenant, TENANT_SIGNATURE_SETTING, signature or ""],
            )
            counts[name] = conn.execute("SELECT count(*) FROM support_tenant_users").fetchone()[0]
            conn.rollback()

    assert counts == {"unsigned": 0, "forged": 0, "signature-of-another-tenant": 0, "signed": 2}


@pytest.fixture
def sql_writer_role(sql_pg_data: Callable, sql_role_dsn: str) -> Iterator[str]:
    """A role that may write one base table (and read the views): only the read-only transaction stops it."""
    role = f"agentconsole_sqlguard_writer_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
        cursor.execute(f'GRANT SELECT, INSERT ON sandbox_tenant_config, support_tenant_users TO "{role}"')
        cursor.execute(f'GRANT EXECUTE ON FUNCTION public.support_bound_tenant() TO "{role}"')
    try:
        yield sql_role_dsn.replace(f"user={settings.SUPPORT_SQL_ROLE}", f"user={role}")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


@pg
def test_it_holds_writes_in_the_read_only_transaction_alone(sql_writer_role: str, settings: Any) -> None:
    insert = (
        "INSERT INTO sandbox_tenant_config (id, tenant_id, key, value, updated_at) "
        "VALUES ({id}, 'acme', 'written', 'yes', now())"
    )
    executor = support_sql_executor()
    assert isinstance(executor, PostgresExecutor)
    executor.dsn = sql_writer_role

    with pytest.raises(QueryDenied, match="read-only transaction"):
        executor.run(insert.format(id=50), tenant_id=BOUND)
    with psycopg.connect(sql_writer_role, autocommit=True) as conn:  # the same role, outside the executor
        conn.execute(insert.format(id=51))

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM sandbox_tenant_config WHERE key = 'written'")
        assert cursor.fetchall() == [(51,)]


@pg
def test_it_refuses_a_connection_that_sees_more_than_the_views(sql_pg_data: Callable, sql_role_dsn: str) -> None:
    executor = support_sql_executor()
    assert isinstance(executor, PostgresExecutor)
    executor.dsn = sql_role_dsn.replace(f"user={settings.SUPPORT_SQL_ROLE}", "user=postgres")

    with pytest.raises(DatabaseMisconfigured) as refused:
        executor.run("SELECT * FROM support_tenant_overview", tenant_id=BOUND)

    assert refused.value.message == ROLE_TOO_POWERFUL


@pg
def test_it_fails_closed_when_the_binding_key_does_not_match(sql_pg_data: Callable, settings: Any) -> None:
    executor = support_sql_executor()
    assert isinstance(executor, PostgresExecutor)
    executor.binding_key = b"not the key the database holds"

    with pytest.raises(DatabaseMisconfigured) as refused:
        executor.run("SELECT * FROM support_tenant_overview", tenant_id=BOUND)

    assert refused.value.message == BINDING_REJECTED


@pg
def test_it_drops_the_views_on_reverse_migration_and_keeps_the_role() -> None:
    migration = importlib.import_module("sandbox.migrations.0002_support_views")
    comments = importlib.import_module("sandbox.migrations.0003_support_view_comments")

    def views() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")
            return {row[0] for row in cursor.fetchall()} & set(SUPPORT_VIEW_COLUMNS)

    def role_exists() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [settings.SUPPORT_SQL_ROLE])
            return cursor.fetchone() is not None

    try:
        with connection.schema_editor() as editor:
            migration.drop_support_views(None, editor)
        assert views() == set()
        assert role_exists()
    finally:  # as the migrations left them, COMMENTs included, for the tests that come after
        with connection.schema_editor() as editor:
            migration.create_support_views(None, editor)
            comments.comment(None, editor)
    assert views() == set(SUPPORT_VIEW_COLUMNS)


# --- SQLite, each layer without the guard ---------------------------------------------------------------------


def sqlite_executor(db: SqliteDb) -> SqliteExecutor:
    executor = support_sql_executor()
    assert isinstance(executor, SqliteExecutor)
    assert executor.path == db.path
    return executor


RAW_DENIED_SQLITE = [
    ("base-table", "SELECT email, password_hash FROM sandbox_tenant_user", QueryDenied),
    ("insert-into-view", "INSERT INTO support_tenant_users (email) VALUES ('x@evil.test')", QueryDenied),
    ("insert-base-table", "INSERT INTO sandbox_tenant (id, name) VALUES ('evil', 'Evil')", QueryDenied),
    ("update-base-table", "UPDATE sandbox_tenant_user SET locked = 0", QueryDenied),
    ("delete-base-table", "DELETE FROM sandbox_invoice", QueryDenied),
    ("drop-view", "DROP VIEW support_invoices", QueryDenied),
    ("create-table", "CREATE TABLE loot AS SELECT 1 AS a", QueryDenied),
    ("sqlite-master", "SELECT sql FROM sqlite_master", QueryDenied),
    ("pragma", "PRAGMA table_info(sandbox_tenant_user)", QueryDenied),
    ("attach", "ATTACH DATABASE ':memory:' AS loot", QueryDenied),
    ("load-extension", "SELECT load_extension('/tmp/evil.so')", QueryDenied),
    (
        "recursive-cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        QueryDenied,
    ),
    ("several-statements", "SELECT 1; DELETE FROM sandbox_invoice", QueryDenied),
    (
        "cte-shadowing-a-view",
        "WITH support_tenant_users AS (SELECT * FROM sandbox_tenant_user) SELECT * FROM support_tenant_users",
        QueryDenied,
    ),
    ("main-qualified-view", "SELECT * FROM main.support_tenant_users", QueryDenied),
    ("set-config", "SELECT set_config('agentconsole.tenant_id', 'globex', true)", QueryFailed),
    ("pg-read-file", "SELECT pg_read_file('/etc/passwd')", QueryFailed),
]


@pytest.mark.parametrize(("name", "sql", "error"), RAW_DENIED_SQLITE, ids=[case[0] for case in RAW_DENIED_SQLITE])
def test_it_holds_at_the_authorizer_and_read_only_handle_without_the_guard(
    sql_on_sqlite: SqliteDb, name: str, sql: str, error: type[SqlExecutionError]
) -> None:
    before = sqlite_snapshot(sql_on_sqlite)

    with pytest.raises(error):
        sqlite_executor(sql_on_sqlite).run(sql, tenant_id=BOUND)

    assert sqlite_snapshot(sql_on_sqlite) == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM support_tenant_users WHERE tenant_id = 'globex' OR 1 = 1",
        "SELECT tenant_id, email FROM support_tenant_users UNION SELECT tenant_id, email FROM support_login_attempts",
        "SELECT tenant_id, count(*) FROM support_invoices GROUP BY tenant_id",
    ],
)
def test_it_keeps_the_tenant_when_raw_sql_asks_for_another_on_sqlite(sql_on_sqlite: SqliteDb, sql: str) -> None:
    result = sqlite_executor(sql_on_sqlite).run(sql, tenant_id=BOUND)

    assert result.rows
    assert_no_secrets(result.as_data())


def test_it_stops_a_runaway_query_at_the_timeout_on_sqlite(sql_on_sqlite: SqliteDb, settings: Any) -> None:
    settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS = 300
    sql_on_sqlite.insert(sql_login_attempts(200))
    started = time.monotonic()

    with pytest.raises(QueryTimedOut):
        sqlite_executor(sql_on_sqlite).run(SLOW_QUERY, tenant_id=BOUND)

    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sandbox_tenant_config (tenant_id, key, value, updated_at) VALUES ('acme', 'k', 'v', 'now')",
        "UPDATE sandbox_tenant_user SET locked = 0",
        "DELETE FROM sandbox_invoice",
        "DROP VIEW support_invoices",
        "SELECT password_hash FROM sandbox_tenant_user",
        "SELECT * FROM sqlite_master",
        "ATTACH DATABASE ':memory:' AS loot",
        "WITH support_tenant_users AS (SELECT * FROM sandbox_tenant_user) SELECT * FROM support_tenant_users",
    ],
)
def test_it_holds_with_the_authorizer_alone_on_a_writable_handle(sql_sqlite_db: SqliteDb, sql: str) -> None:
    before = sqlite_snapshot(sql_sqlite_db)
    conn = sqlite3.connect(sql_sqlite_db.path, isolation_level=None)
    sqlite_tenant_copies(conn, tenant_id=BOUND, views=settings.SUPPORT_SQL_VIEWS)
    conn.set_authorizer(sqlite_authorizer(settings.SUPPORT_SQL_VIEWS))
    try:
        with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|prohibited"):
            conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM support_tenant_users").fetchone() == (2,)
    finally:
        conn.close()
    assert sqlite_snapshot(sql_sqlite_db) == before


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sandbox_tenant_config (tenant_id, key, value, updated_at) VALUES ('acme', 'k', 'v', 'now')",
        "UPDATE sandbox_tenant_user SET locked = 0",
        "DELETE FROM sandbox_invoice",
        "DROP VIEW support_invoices",
        "CREATE TABLE loot (a int)",
    ],
)
def test_it_holds_with_the_read_only_handle_alone(sql_sqlite_db: SqliteDb, sql: str) -> None:
    before = sqlite_snapshot(sql_sqlite_db)
    conn = sqlite3.connect(sqlite_readonly_uri(sql_sqlite_db.path), uri=True, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute(sql)
    finally:
        conn.close()
    assert sqlite_snapshot(sql_sqlite_db) == before


def test_it_drops_the_views_on_reverse_migration_on_sqlite(sql_sqlite_db: SqliteDb) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "sandbox.settings_demo",
        "DATABASE_URL": f"sqlite:///{sql_sqlite_db.path}",
        "DJANGO_DEBUG": "true",
        "AGENTCONSOLE_VAR_DIR": str(sql_sqlite_db.path.parent),
    }

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "sandbox", "0001", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )

    assert sql_sqlite_db.execute("SELECT name FROM sqlite_master WHERE type = 'view'") == []
    assert sql_sqlite_db.execute("SELECT count(*) FROM sandbox_tenant_user") == [(3,)]
