"""manage.py support_sql_install on real PostgreSQL, for a company that is not the sandbox: its own table and view,
installed by the command, read through run_sql's own executor as the read-only role."""

# ruff: noqa: S608 - SQL built from this module's constants
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from agent.support_sql import (
    BAD_IDENTIFIER,
    NO_VIEWS,
    VIEW_MISSING,
    VIEW_NOT_BARRIER,
    VIEW_NOT_BOUND,
    VIEWS_SQL_FAILED,
)
from agent.tools.sql_executor import BINDING_KEY_TABLE, PostgresExecutor, support_sql_executor

TABLE = "install_test_accounts"
VIEW = "install_test_account_emails"
VIEW_SQL = f"""
-- A company's own support view: only what support may see, only the bound tenant's rows.
CREATE OR REPLACE VIEW public.{VIEW} WITH (security_barrier) AS
SELECT a.tenant_id, a.email FROM public.{TABLE} AS a WHERE a.tenant_id = public.support_bound_tenant();
"""


@pytest.fixture
def role() -> str:
    # Its own role: the sandbox's role keeps its grants for the run_sql tests of the same run.
    return f"{settings.SUPPORT_SQL_ROLE}_install"[:63]


@pytest.fixture
def company_db(transactional_db: None, role: str) -> Iterator[None]:
    """The company's base table, committed (run_sql's own connection sees only committed data); dropped after."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {TABLE} (tenant_id text NOT NULL, email text NOT NULL, password_hash text)")
        cursor.execute(
            f"INSERT INTO {TABLE} VALUES ('acme', 'ada@acme.test', 'h1'), ('acme', 'bob@acme.test', 'h2'), "
            "('globex', 'gus@globex.test', 'h3')"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW IF EXISTS {VIEW}, install_test_other")
        cursor.execute(f"DROP TABLE {TABLE}")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone():
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


def install(tmp_path: Path, sql: str, *, role: str, views: str = VIEW) -> str:
    path = tmp_path / "views.sql"
    path.write_text(sql)
    out = Path(tmp_path / "out.txt")
    with out.open("w") as stdout:
        call_command("support_sql_install", views_sql=path, views=views, role=role, stdout=stdout)
    return out.read_text()


def read_as_role(role: str, query: str, *, tenant_id: str = "acme", **overrides: Any) -> list[list[Any]]:
    """Through run_sql's own executor, connected as the role."""
    executor = support_sql_executor()
    assert isinstance(executor, PostgresExecutor)
    executor.dsn = executor.dsn.replace(f"user={settings.SUPPORT_SQL_ROLE}", f"user={role}")
    executor.views = [VIEW]
    return executor.run(query, tenant_id=tenant_id).rows


def privileges(role: str) -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'SELECT'), "
            "has_table_privilege(%s, %s, 'INSERT'), "
            f"(SELECT count(*) FROM {BINDING_KEY_TABLE}), "
            "(SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %s)",
            [role, VIEW, role, TABLE, role, VIEW, role],
        )
        view, table, insert, keys, powerful = cursor.fetchone()
    return {"view": view, "table": table, "insert": insert, "one_key": keys == 1, "powerful": powerful}


def test_it_installs_a_read_path_that_shows_the_bound_tenant_alone(company_db: None, role: str, tmp_path) -> None:
    output = install(tmp_path, VIEW_SQL, role=role)

    assert f"role {role} may read 1 views ({VIEW})" in output
    assert read_as_role(role, f"SELECT email FROM {VIEW} ORDER BY email") == [["ada@acme.test"], ["bob@acme.test"]]
    assert read_as_role(role, f"SELECT email FROM {VIEW}", tenant_id="globex") == [["gus@globex.test"]]
    assert privileges(role) == {"view": True, "table": False, "insert": False, "one_key": True, "powerful": False}


def test_it_refuses_the_base_table_and_a_forged_binding_to_the_role(company_db: None, role: str, tmp_path) -> None:
    install(tmp_path, VIEW_SQL, role=role)
    dsn = support_sql_executor().dsn.replace(f"user={settings.SUPPORT_SQL_ROLE}", f"user={role}")

    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT set_config(%s, 'globex', true)", [settings.SUPPORT_SQL_TENANT_SETTING])
        assert conn.execute(f"SELECT count(*) FROM {VIEW}").fetchone() == (0,)  # no signature: no tenant
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT password_hash FROM {TABLE}")


def test_it_is_idempotent(company_db: None, role: str, tmp_path) -> None:
    first = install(tmp_path, VIEW_SQL, role=role)
    state = privileges(role)

    second = install(tmp_path, VIEW_SQL, role=role)

    assert second == first
    assert privileges(role) == state
    assert read_as_role(role, f"SELECT count(*) FROM {VIEW}") == [[2]]


def test_it_takes_back_what_a_role_may_no_longer_read(company_db: None, role: str, tmp_path) -> None:
    other = "CREATE VIEW install_test_other WITH (security_barrier) AS SELECT 1 AS n WHERE support_bound_tenant() = ''"
    install(tmp_path, f"{VIEW_SQL}\n{other};", role=role, views=f"{VIEW},install_test_other")
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT SELECT ON {TABLE} TO "{role}"')  # granted by hand since

    install(tmp_path, VIEW_SQL, role=role)

    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, 'install_test_other', 'SELECT')", [role])
        assert cursor.fetchone() == (False,)
    assert privileges(role)["table"] is False


UNBOUND = f"CREATE VIEW {VIEW} WITH (security_barrier) AS SELECT tenant_id, email FROM {TABLE};"
NO_BARRIER = f"CREATE VIEW {VIEW} AS SELECT tenant_id, email FROM {TABLE} WHERE tenant_id = support_bound_tenant();"
REFUSALS = [
    ("view-missing", "", VIEW, VIEW_MISSING.format(name=VIEW)),
    ("view-not-bound", UNBOUND, VIEW, VIEW_NOT_BOUND.format(name=VIEW, function="public.support_bound_tenant")),
    ("view-not-a-barrier", NO_BARRIER, VIEW, VIEW_NOT_BARRIER.format(name=VIEW)),
    ("one-view-missing", VIEW_SQL, f"{VIEW},install_test_other", VIEW_MISSING.format(name="install_test_other")),
    ("bad-sql", f"{VIEW_SQL}\nCREATE VIEW nope AS SELECT * FROM no_such_table;", VIEW, VIEWS_SQL_FAILED[:30]),
    ("no-views", VIEW_SQL, " , ", NO_VIEWS),
    ("injected-view-name", VIEW_SQL, "x; DROP TABLE y", BAD_IDENTIFIER.format(kind="View", name="x; DROP TABLE y")),
]


@pytest.mark.parametrize(("sql", "views", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_it_refuses_clearly_and_changes_nothing(
    company_db: None, role: str, tmp_path, sql: str, views: str, message: str
) -> None:
    with pytest.raises(CommandError) as refused:
        install(tmp_path, sql, role=role, views=views)

    assert message in str(refused.value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), (SELECT 1 FROM pg_roles WHERE rolname = %s)", [VIEW, role])
        assert cursor.fetchone() == (None, None)  # the file's view rolled back, no role created


def test_it_names_the_failing_statement(company_db: None, role: str, tmp_path) -> None:
    with pytest.raises(CommandError, match=r"statement 2: .*no_such_table"):
        install(tmp_path, f"{VIEW_SQL}\nCREATE VIEW nope AS SELECT * FROM no_such_table;", role=role)


def test_it_refuses_a_role_name_that_is_not_a_plain_name(company_db: None, tmp_path) -> None:
    with pytest.raises(CommandError, match="not a plain lower-case SQL name"):
        install(tmp_path, VIEW_SQL, role='ro"; DROP ROLE postgres; --')


def test_it_refuses_a_views_file_it_cannot_read(db: None, tmp_path) -> None:
    with pytest.raises(CommandError, match="Cannot read --views-sql"):
        call_command("support_sql_install", views_sql=tmp_path / "missing.sql")
