"""run_sql end to end on PostgreSQL and on SQLite. Every database layer holding with the guard skipped:
test_sql_layers.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from agent.catalogue import get_tool
from agent.loop import _tool_specs
from agent.policy import Risk
from agent.tools.base import ErrorType, Observation, ToolContext
from agent.tools.sql import NO_TENANT, RunSql
from agent.tools.sql_catalogue import SUPPORT_VIEW_COLUMNS
from agent.tools.sql_guard import MAX_QUERY_LENGTH
from agent.tools.sql_views import clear_view_cache
from tests.agent.tools.conftest import BOUND, OTHER, SECRETS, SqliteDb, sql_login_attempts
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


def pg_snapshot() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in BASE_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        counts["relations"] = cursor.fetchone()[0]
    return counts


def sqlite_snapshot(db: SqliteDb) -> list[tuple[Any, ...]]:
    counts = [db.execute(f"SELECT '{table}', count(*) FROM {table}")[0] for table in BASE_TABLES]  # noqa: S608
    return counts + db.execute("SELECT type, name FROM sqlite_master ORDER BY name")


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


def test_it_describes_the_views_on_sqlite_the_same_in_every_process(sql_on_sqlite: SqliteDb) -> None:
    """The description is part of a workflow version's content hash: listed in an order that depends on the
    process's string hashing, each web process and worker saw a different version ("changed since version 1",
    no evidence), and views that call the tenant function could not be described at all."""
    clear_view_cache()
    description = get_tool("run_sql").spec()["description"]
    listed = [line[2:].split(" ")[0] for line in description.splitlines() if line.startswith("- support_")]
    assert listed == sorted(settings.SUPPORT_SQL_VIEWS)
    assert "could not be read" not in description
    assert "failed_logins" in description and "trial_ends_at" in description
    clear_view_cache()
