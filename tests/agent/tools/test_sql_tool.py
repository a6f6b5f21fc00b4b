"""run_sql end to end on PostgreSQL and on SQLite, and every database layer holding with the guard skipped."""

from __future__ import annotations

import importlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from agent.loop import _tool_specs
from agent.policy import Risk
from agent.tools import get_tool
from agent.tools.base import ErrorType, Observation, ToolContext
from agent.tools.sql import NO_TENANT, RunSql
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
from agent.tools.sql_guard import MAX_QUERY_LENGTH
from agent.tools.sql_views import clear_view_cache
from tests.agent.tools.conftest import BOUND, OTHER, ROOT, SECRETS, SqliteDb, sql_login_attempts
from tests.agent.tools.test_sql_guard import (
    ESCAPES,
    LEGIT,
    OTHER_TENANT,
    Escape,
    OtherTenant,
    assert_refused_as,
)
from tests.factories import AgentRunFactory

# The support views run_sql reads here are the sandbox company's (sandbox/sql/), over its tables.
pytestmark = pytest.mark.company

CTX = ToolContext(ticket_id=1, tenant_id=BOUND)
BASE_TABLES = (
    "sandbox_tenant",
    "sandbox_tenant_user",
    "sandbox_login_attempt",
    "sandbox_subscription",
    "sandbox_invoice",
    "sandbox_tenant_config",
)
SLOW_QUERY = (
    "SELECT count(*) FROM support_login_attempts AS a, support_login_attempts AS b, "
    "support_login_attempts AS c, support_login_attempts AS d"
)
pg = pytest.mark.django_db(transaction=True)


def run_sql(query: str, ctx: ToolContext = CTX) -> Observation:
    tool = get_tool("run_sql")
    assert tool is not None
    return tool.invoke({"query": query}, ctx)


def assert_no_secrets(value: Any) -> None:
    dump = json.dumps(value.to_dict() if isinstance(value, Observation) else value).lower()
    assert not [secret for secret in SECRETS if secret.lower() in dump], dump


def assert_refused(observation: Observation, case: Escape) -> None:
    assert not observation.ok
    if len(case.sql) > MAX_QUERY_LENGTH:  # the argument schema stops it before the guard
        assert observation.error_type == ErrorType.INVALID_ARGUMENTS
        return
    assert observation.error_type == ErrorType.REFUSED
    assert_refused_as(observation.message, case.refusals)


def assert_only_bound_rows(observation: Observation, case: OtherTenant) -> None:
    assert observation.ok, observation.message
    assert_no_secrets(observation)
    data = observation.data
    assert (data["row_count"] > 0) is case.own_rows
    tenant_columns = [i for i, name in enumerate(data["columns"]) if name in {"tenant_id", "other"}]
    assert all(row[i] == BOUND for row in data["rows"] for i in tenant_columns)


# --- The tool as the model sees it ----------------------------------------------------------------------------


def test_it_is_registered_as_a_read_tool_with_one_bounded_argument() -> None:
    tool = get_tool("run_sql")
    assert isinstance(tool, RunSql)
    schema = tool.spec()["input_schema"]

    assert tool.risk == Risk.READ
    assert set(schema["properties"]) == {"query"}
    assert schema["properties"]["query"]["maxLength"] == MAX_QUERY_LENGTH
    assert schema["additionalProperties"] is False


@pg
def test_it_lists_every_view_and_column_in_its_description() -> None:
    clear_view_cache()
    description = RunSql().spec()["description"]

    for view, columns in SUPPORT_VIEW_COLUMNS.items():
        assert view in description
        assert all(column.split(" ")[0] in description for column in columns)
    assert set(SUPPORT_VIEW_COLUMNS) == set(settings.SUPPORT_SQL_VIEWS)


@pg
def test_it_tells_the_model_the_configured_views_as_the_database_describes_them(settings) -> None:
    run = AgentRunFactory()

    def told() -> str:
        clear_view_cache()  # a running process reads them again after CACHE_SECONDS
        return next(spec for spec in _tool_specs(run) if spec["name"] == "run_sql")["description"]

    description = told()
    assert "- support_invoices — The tenant's invoices (amounts in cents)" in description
    assert "— draft | open | paid | void | uncollectible" in description
    assert "support_tenant_users" in description

    settings.SUPPORT_SQL_VIEWS = ["support_tenant_overview", "support_invoices"]
    description = told()
    assert "support_invoices" in description and "support_tenant_overview" in description
    assert "support_tenant_users" not in description and "support_login_attempts" not in description

    original = "The tenant's invoices (amounts in cents); a duplicate charge shows as two paid invoices."
    try:
        with connection.cursor() as cursor:
            cursor.execute("COMMENT ON VIEW support_invoices IS 'Bills sent to the tenant, amounts in cents.'")
            cursor.execute("COMMENT ON COLUMN support_invoices.number IS 'the number printed on the bill'")
        description = told()
        assert "- support_invoices — Bills sent to the tenant, amounts in cents." in description
        assert "number" in description and "— the number printed on the bill" in description
        assert original not in description
    finally:
        with connection.cursor() as cursor:
            cursor.execute("COMMENT ON VIEW support_invoices IS %s", [original])
            cursor.execute("COMMENT ON COLUMN support_invoices.number IS NULL")
        clear_view_cache()


def test_it_refuses_to_run_without_a_tenant() -> None:
    observation = run_sql("SELECT * FROM support_tenant_overview", ToolContext(ticket_id=1, tenant_id=""))

    assert observation.error_type == ErrorType.REFUSED
    assert observation.message == NO_TENANT


def test_it_refuses_a_query_longer_than_its_schema_allows() -> None:
    observation = run_sql("SELECT 1" + " " * MAX_QUERY_LENGTH)

    assert observation.error_type == ErrorType.INVALID_ARGUMENTS


# --- PostgreSQL, through the tool ----------------------------------------------------------------------------


@pg
def test_it_describes_exactly_the_columns_the_views_have() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
            [list(SUPPORT_VIEW_COLUMNS)],
        )
        actual: dict[str, list[str]] = {}
        for view, column in cursor.fetchall():
            actual.setdefault(view, []).append(column)

    described = {view: [c.split(" ")[0] for c in columns] for view, columns in SUPPORT_VIEW_COLUMNS.items()}
    assert actual == described
    assert not {"password_hash", "internal_notes", "payment_method_last4"} & {c for cs in actual.values() for c in cs}


@pg
@pytest.mark.parametrize(("name", "sql"), LEGIT, ids=[name for name, _ in LEGIT])
def test_it_answers_legitimate_queries_on_postgresql(sql_pg_data: Callable, name: str, sql: str) -> None:
    observation = run_sql(sql)

    assert observation.ok, observation.message
    assert observation.data["row_count"] > 0
    assert_no_secrets(observation)


@pg
@pytest.mark.parametrize("case", ESCAPES, ids=[case.id for case in ESCAPES])
def test_it_refuses_every_escape_attempt_on_postgresql(sql_pg_data: Callable, case: Escape) -> None:
    before = pg_snapshot()

    observation = run_sql(case.sql)

    assert_refused(observation, case)
    assert pg_snapshot() == before


@pg
@pytest.mark.parametrize("case", OTHER_TENANT, ids=[case.id for case in OTHER_TENANT])
def test_it_returns_only_the_bound_tenants_rows_on_postgresql(sql_pg_data: Callable, case: OtherTenant) -> None:
    assert_only_bound_rows(run_sql(case.sql), case)


@pg
def test_it_sees_the_other_tenant_only_when_bound_to_it(sql_pg_data: Callable) -> None:
    observation = run_sql("SELECT email FROM support_tenant_users", ToolContext(ticket_id=2, tenant_id=OTHER))

    assert observation.data["rows"] == [["hank@globex.test"]]


@pg
def test_it_names_the_columns_of_an_empty_result_on_postgresql(sql_pg_data: Callable) -> None:
    observation = run_sql("SELECT email, locked FROM support_tenant_users WHERE email = 'nobody@acme.test'")

    assert observation.data == {"columns": ["email", "locked"], "rows": [], "row_count": 0, "truncated": False}


@pg
def test_it_returns_json_safe_values_on_postgresql(sql_pg_data: Callable) -> None:
    observation = run_sql(
        "SELECT i.number, i.issued_at, i.amount_cents / 100.0 AS amount, a.ip_address, a.success "
        "FROM support_invoices AS i CROSS JOIN support_login_attempts AS a "
        "WHERE i.number = 'INV-ACME-1' AND a.attempt_id = 1"
    )

    assert observation.ok, observation.message
    assert observation.data["columns"] == ["number", "issued_at", "amount", "ip_address", "success"]
    number, issued_at, amount, ip_address, success = observation.data["rows"][0]
    assert (number, ip_address, success) == ("INV-ACME-1", "203.0.113.7", False)
    assert datetime.fromisoformat(issued_at).tzinfo is not None
    assert amount.startswith("49.00")
    assert json.loads(json.dumps(observation.to_dict())) == observation.to_dict()
    assert observation.meta == {"views": ["support_invoices", "support_login_attempts"]}


@pg
def test_it_caps_the_rows_and_says_so_on_postgresql(sql_pg_data: Callable, settings: Any) -> None:
    settings.SUPPORT_SQL_ROW_CAP = 5
    sql_pg_data(sql_login_attempts(8))

    capped = run_sql("SELECT attempt_id FROM support_login_attempts ORDER BY attempt_id")
    limited = run_sql("SELECT attempt_id FROM support_login_attempts ORDER BY attempt_id LIMIT 5")

    assert (capped.data["row_count"], capped.data["truncated"]) == (5, True)
    assert capped.data["rows"] == [[1], [2], [3], [100], [101]]
    assert (limited.data["row_count"], limited.data["truncated"]) == (5, False)


@pg
def test_it_times_out_a_slow_query_on_postgresql(sql_pg_data: Callable, settings: Any) -> None:
    settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS = 300
    sql_pg_data(sql_login_attempts(200))
    started = time.monotonic()

    observation = run_sql(SLOW_QUERY)

    assert observation.error_type == ErrorType.TIMEOUT
    assert "300 ms" in observation.message
    assert time.monotonic() - started < 3


@pg
def test_it_passes_a_database_error_back_for_the_model_to_fix(sql_pg_data: Callable) -> None:
    observation = run_sql("SELECT no_such_column FROM support_invoices")

    assert observation.error_type == ErrorType.INVALID_ARGUMENTS
    assert "no_such_column" in observation.message


# --- PostgreSQL, each layer without the guard -------------------------------------------------------------------


def pg_snapshot() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in BASE_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        counts["relations"] = cursor.fetchone()[0]
    return counts


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
    finally:
        with connection.schema_editor() as editor:
            migration.create_support_views(None, editor)
    assert views() == set(SUPPORT_VIEW_COLUMNS)


# --- SQLite, through the tool ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "sql"), LEGIT, ids=[name for name, _ in LEGIT])
def test_it_answers_legitimate_queries_on_sqlite(sql_on_sqlite: SqliteDb, name: str, sql: str) -> None:
    observation = run_sql(sql)

    assert observation.ok, observation.message
    assert observation.data["row_count"] > 0
    assert_no_secrets(observation)


@pytest.mark.parametrize("case", ESCAPES, ids=[case.id for case in ESCAPES])
def test_it_refuses_every_escape_attempt_on_sqlite(sql_on_sqlite: SqliteDb, case: Escape) -> None:
    before = sqlite_snapshot(sql_on_sqlite)

    observation = run_sql(case.sql)

    assert_refused(observation, case)
    assert sqlite_snapshot(sql_on_sqlite) == before


@pytest.mark.parametrize("case", OTHER_TENANT, ids=[case.id for case in OTHER_TENANT])
def test_it_returns_only_the_bound_tenants_rows_on_sqlite(sql_on_sqlite: SqliteDb, case: OtherTenant) -> None:
    assert_only_bound_rows(run_sql(case.sql), case)


def test_it_names_the_columns_of_an_empty_result_on_sqlite(sql_on_sqlite: SqliteDb) -> None:
    observation = run_sql("SELECT email, locked FROM support_tenant_users WHERE email = 'nobody@acme.test'")

    assert observation.data == {"columns": ["email", "locked"], "rows": [], "row_count": 0, "truncated": False}


def test_it_caps_the_rows_and_says_so_on_sqlite(sql_on_sqlite: SqliteDb, settings: Any) -> None:
    settings.SUPPORT_SQL_ROW_CAP = 5
    sql_on_sqlite.insert(sql_login_attempts(8))

    observation = run_sql("SELECT attempt_id FROM support_login_attempts ORDER BY attempt_id")

    assert observation.data["rows"] == [[1], [2], [3], [100], [101]]
    assert observation.data["truncated"] is True


def test_it_times_out_a_slow_query_on_sqlite(sql_on_sqlite: SqliteDb, settings: Any) -> None:
    settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS = 300
    sql_on_sqlite.insert(sql_login_attempts(200))
    started = time.monotonic()

    observation = run_sql(SLOW_QUERY)

    assert observation.error_type == ErrorType.TIMEOUT
    assert time.monotonic() - started < 3


# --- SQLite, each layer without the guard ---------------------------------------------------------------------


def sqlite_snapshot(db: SqliteDb) -> list[tuple[Any, ...]]:
    counts = [db.execute(f"SELECT '{table}', count(*) FROM {table}")[0] for table in BASE_TABLES]  # noqa: S608
    return counts + db.execute("SELECT type, name FROM sqlite_master ORDER BY name")


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
