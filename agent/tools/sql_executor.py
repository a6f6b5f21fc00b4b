"""Running a guarded query against the support database: PostgreSQL as the read-only role with a signed tenant
binding, or SQLite with tenant copies and an authorizer (docs/sql-guard.md)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import itertools
import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any, ClassVar

import dj_database_url
import psycopg
from django.conf import settings
from django.db import connections
from django.utils.crypto import salted_hmac
from psycopg import pq
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from agent.tools.base import ErrorType
from agentconsole.errors import ApplicationError

# The signed tenant binding (PostgreSQL). The views call BOUND_TENANT_FUNCTION, which returns the tenant in
# SUPPORT_SQL_TENANT_SETTING only when TENANT_SIGNATURE_SETTING holds its HMAC under a key kept in
# BINDING_KEY_TABLE, which the role cannot read. set_config() is callable by every role, so without the signature a
# query could rebind itself to another tenant between rows.
TENANT_SIGNATURE_SETTING = "agentconsole.tenant_signature"
BINDING_KEY_TABLE = "support_sql_binding_key"
BOUND_TENANT_FUNCTION = "support_bound_tenant"
_BINDING_KEY_SALT = "agentconsole.support_sql.tenant_binding"
# The SQLite views call this function, which the executor registers on its own connection.
SQLITE_TENANT_FUNCTION = "agentconsole_tenant"

# One row: does the connected role see more than the views, and which tenant do the views see.
ROLE_CHECK_SQL = """
SELECT r.rolsuper OR r.rolbypassrls
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members AS m WHERE m.member = r.oid)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c WHERE c.relowner = r.oid AND c.relname = ANY(%s)),
       public.support_bound_tenant()
FROM pg_catalog.pg_roles AS r
WHERE r.rolname = current_user
"""

CONNECT_TIMEOUT_SECONDS = 5
SQLITE_PROGRESS_STEPS = 1000  # SQLite VM instructions between two looks at the clock
DATABASE_DENIED = "The database refused the query: {error}"
DATABASE_ERROR = "The database could not run the query: {error}"
TIMED_OUT = "The query was stopped after {ms} ms. Narrow it (WHERE, LIMIT, fewer joins) or aggregate."
UNAVAILABLE = "The support database is unreachable right now: {error}"
UNSUPPORTED_VENDOR = "run_sql supports PostgreSQL and SQLite; the support database is {vendor!r}."
ROLE_TOO_POWERFUL = (
    "The support SQL connection runs as a role that can see more than the support views (superuser, BYPASSRLS, "
    "member of another role, or owner of the views). Refusing to run queries; see docs/sql-guard.md."
)
BINDING_REJECTED = (
    "The support database did not accept the tenant binding (its binding key does not match this console's "
    "DJANGO_SECRET_KEY, or the support views are not installed). See docs/sql-guard.md."
)

# Functions the SQLite authorizer lets a statement call, as SQLite names them (the guard's list as sqlglot writes it
# for SQLite, plus what SQLite calls for LIKE).
SQLITE_FUNCTIONS = frozenset(
    {
        "count",
        "sum",
        "avg",
        "min",
        "max",
        "total",
        "coalesce",
        "ifnull",
        "nullif",
        "lower",
        "upper",
        "length",
        "trim",
        "ltrim",
        "rtrim",
        "substr",
        "substring",
        "replace",
        "instr",
        "abs",
        "round",
        "date",
        "time",
        "datetime",
        "julianday",
        "strftime",
        "row_number",
        "rank",
        "dense_rank",
        "group_concat",
        "iif",
        "like",
    }
)


class SqlExecutionError(ApplicationError):
    """The database side of run_sql failed; error_type is what the model sees."""

    error_type: ClassVar[ErrorType] = ErrorType.INTERNAL
    retryable: ClassVar[bool] = False


class QueryTimedOut(SqlExecutionError):
    error_type = ErrorType.TIMEOUT


class QueryDenied(SqlExecutionError):
    error_type = ErrorType.REFUSED


class QueryFailed(SqlExecutionError):
    error_type = ErrorType.INVALID_ARGUMENTS


class DatabaseUnavailable(SqlExecutionError):
    error_type = ErrorType.UPSTREAM
    retryable = True


class DatabaseMisconfigured(SqlExecutionError):
    error_type = ErrorType.INTERNAL


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool

    def as_data(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "row_count": len(self.rows), "truncated": self.truncated}


def tenant_binding_key() -> bytes:
    """The HMAC key of the tenant binding, derived from DJANGO_SECRET_KEY (rotating that key rotates this one)."""
    return _binding_key(settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _binding_key(secret: str) -> bytes:
    # Every model turn builds run_sql's spec through support_sql_executor, which takes this key.
    return salted_hmac(_BINDING_KEY_SALT, "v1", secret=secret, algorithm="sha256").digest()


def tenant_binding_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys: PostgreSQL computes the HMAC from them with built-in sha256()."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def tenant_signature(tenant_id: str, key: bytes) -> str:
    return hmac.new(key, tenant_id.encode(), hashlib.sha256).hexdigest()


def json_safe(value: Any) -> Any:
    """Values as JSON carries them: dates in ISO 8601; decimals, intervals, UUIDs and addresses as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)  # Decimal, timedelta, UUID, ipaddress and whatever else a driver hands back


def _capped(rows: Iterable[Iterable[Any]], row_cap: int) -> tuple[list[list[Any]], bool]:
    fetched = [[json_safe(v) for v in row] for row in itertools.islice(rows, row_cap + 1)]
    return fetched[:row_cap], len(fetched) > row_cap


class PostgresExecutor:
    """Runs one statement as the support role: READ ONLY, timed out, tenant-bound, row-capped, rolled back."""

    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        timeout_ms: int,
        row_cap: int,
        views: Iterable[str],
        tenant_setting: str,
        binding_key: bytes,
    ) -> None:
        self.dsn = dsn
        self.timeout_ms = timeout_ms
        self.row_cap = row_cap
        self.views = sorted(views)
        self.tenant_setting = tenant_setting
        self.binding_key = binding_key

    def run(self, query: str, *, tenant_id: str) -> QueryResult:
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="run_sql")
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(UNAVAILABLE.format(error=_pg_message(exc))) from None
        try:
            conn.read_only = True  # the first statement opens BEGIN READ ONLY
            with conn.cursor() as cur:
                self._bind(cur, tenant_id)
                # stream(): the extended protocol, so one statement only, and rows arrive one at a time, so a huge
                # result stops at the cap instead of filling this process's memory.
                rows = cur.stream(query)
                try:
                    kept, truncated = _capped(rows, self.row_cap)
                    columns = [column.name for column in cur.description or []]
                finally:
                    rows.close()  # stops a query still sending rows (cancels it) before the rollback
            if not kept:
                columns = _describe(conn, query)  # stream() learns the columns from the first row only
            return QueryResult(columns=columns, rows=kept, truncated=truncated)
        except psycopg.Error as exc:
            raise self._translate(exc) from None
        finally:
            # A driver-side refusal (COPY) can leave the connection mid-protocol; closing it aborts the transaction
            # on the server all the same.
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            conn.close()

    def _bind(self, cur: psycopg.Cursor, tenant_id: str) -> None:
        cur.execute(pgsql.SQL("SET LOCAL statement_timeout = {}").format(pgsql.Literal(int(self.timeout_ms))))
        cur.execute(
            "SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
            [
                self.tenant_setting,
                tenant_id,
                TENANT_SIGNATURE_SETTING,
                tenant_signature(tenant_id, self.binding_key),
            ],
        )
        # Refuse to run on a connection that sees more than the views, or whose binding the database rejects: a
        # misconfigured DSN must fail closed, not quietly widen what the model can read.
        cur.execute(ROLE_CHECK_SQL, [self.views])
        too_powerful, bound = cur.fetchone() or (True, None)
        if too_powerful:
            raise DatabaseMisconfigured(ROLE_TOO_POWERFUL)
        if bound != tenant_id:
            raise DatabaseMisconfigured(BINDING_REJECTED)

    def _translate(self, exc: psycopg.Error) -> SqlExecutionError:
        message = _pg_message(exc)
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return QueryTimedOut(TIMED_OUT.format(ms=self.timeout_ms))
        if isinstance(exc, psycopg.errors.UndefinedFunction) and BOUND_TENANT_FUNCTION in message:
            return DatabaseMisconfigured(BINDING_REJECTED)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction):
            return QueryDenied(DATABASE_DENIED.format(error=message))
        if exc.sqlstate is None and not isinstance(exc, psycopg.OperationalError):
            # Refused by the driver before or after the server: several statements, COPY, no result set.
            return QueryDenied(DATABASE_DENIED.format(error=message))
        if isinstance(exc, psycopg.errors.SyntaxError) and "multiple commands" in message:
            return QueryDenied(DATABASE_DENIED.format(error=message))
        if exc.sqlstate is None or exc.sqlstate.startswith(("08", "53", "57")):
            return DatabaseUnavailable(UNAVAILABLE.format(error=message))
        return QueryFailed(DATABASE_ERROR.format(error=message))


def _describe(conn: psycopg.Connection, query: str) -> list[str]:
    """The column names of a query that returned no rows: parsed and described by the server, not run again."""
    encoding = conn.info.encoding
    prepared = conn.pgconn.prepare(b"run_sql_columns", query.encode(encoding))
    if prepared.status != pq.ExecStatus.COMMAND_OK:
        return []
    described = conn.pgconn.describe_prepared(b"run_sql_columns")
    if described.status != pq.ExecStatus.COMMAND_OK:
        return []
    return [(described.fname(i) or b"").decode(encoding) for i in range(described.nfields)]


def _pg_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def sqlite_readonly_uri(path: str | Path) -> str:
    return f"{Path(path).resolve().as_uri()}?mode=ro"


def sqlite_tenant_copies(conn: sqlite3.Connection, *, tenant_id: str, views: Iterable[str]) -> None:
    """Copy the tenant's rows of each view into a TEMP table of the same name, which unqualified names resolve to.

    SQLite's authorizer names only the innermost view a read happens in, and a CTE named like a support view is
    reported under that same name: "allow base columns read through an allowed view" lets
    WITH support_tenant_users AS (SELECT * FROM sandbox_tenant_user) ... read every tenant's password hashes. With
    the copies, the authorizer allows reads of the TEMP copies only and no read of the main database at all.
    """
    conn.create_function(SQLITE_TENANT_FUNCTION, 0, lambda: tenant_id, deterministic=True)
    conn.execute("PRAGMA temp_store = MEMORY")
    for view in sorted(views):
        quoted = view.replace('"', '""')
        conn.execute(f'CREATE TEMP TABLE "{quoted}" AS SELECT * FROM main."{quoted}"')  # noqa: S608 - our view names


def sqlite_authorizer(views: Iterable[str]) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    """Allow SELECT, reading the TEMP copies of the views, and allow-listed functions; deny everything else."""
    allowed_views = frozenset(view.lower() for view in views)

    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        # For a read, arg1 is the table, arg2 the column, db its database ("main" for the file; None with an empty
        # column when a table is read without naming a column, as count(*) does). Reading a support view in the file
        # reads its base tables under db "main" and is denied, so only the TEMP copies can be read.
        if action == sqlite3.SQLITE_READ and db in {"temp", None} and (arg1 or "").lower() in allowed_views:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


class SqliteExecutor:
    """Runs one statement on a read-only handle of the SQLite file, under an authorizer, a clock and a row cap."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, timeout_ms: int, row_cap: int, views: Iterable[str]) -> None:
        self.path = Path(path)
        self.timeout_ms = timeout_ms
        self.row_cap = row_cap
        # Sorted, as PostgresExecutor's: the order the model is told the views in, which is part of a workflow
        # version's content, must not vary with each process's string hashing (as a frozenset's does).
        self.views = sorted(set(views))

    def run(self, query: str, *, tenant_id: str) -> QueryResult:
        try:
            conn = sqlite3.connect(sqlite_readonly_uri(self.path), uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(UNAVAILABLE.format(error=exc)) from None
        try:
            deadline = time.monotonic() + self.timeout_ms / 1000
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), SQLITE_PROGRESS_STEPS)
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            sqlite_tenant_copies(conn, tenant_id=tenant_id, views=self.views)
            conn.execute("PRAGMA query_only = ON")  # no writes, not even to the TEMP copies
            conn.set_authorizer(sqlite_authorizer(self.views))
            cur = conn.execute(query)
            kept, truncated = _capped(cur, self.row_cap)
            columns = [column[0] for column in cur.description or []]
            return QueryResult(columns=columns, rows=kept, truncated=truncated)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        finally:
            conn.close()

    def _translate(self, exc: sqlite3.Error) -> SqlExecutionError:
        name = getattr(exc, "sqlite_errorname", "")
        if name == "SQLITE_INTERRUPT":
            return QueryTimedOut(TIMED_OUT.format(ms=self.timeout_ms))
        # The authorizer's refusals come back under several codes (SQLITE_AUTH, SQLITE_ERROR for a function,
        # SQLITE_SCHEMA for CREATE); their wording is SQLite's own and stable.
        denied = "not authorized" in str(exc) or "prohibited" in str(exc)
        if denied or name in {"SQLITE_AUTH", "SQLITE_READONLY"} or isinstance(exc, sqlite3.ProgrammingError):
            return QueryDenied(DATABASE_DENIED.format(error=exc))
        if name in {"SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR"}:
            return DatabaseUnavailable(UNAVAILABLE.format(error=exc))
        return QueryFailed(DATABASE_ERROR.format(error=exc))


Executor = PostgresExecutor | SqliteExecutor


def support_sql_executor() -> Executor:
    """The executor for the configured support database: SUPPORT_SQL_DATABASE_URL, else the default database."""
    common = {
        "timeout_ms": settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS,
        "row_cap": settings.SUPPORT_SQL_ROW_CAP,
        "views": settings.SUPPORT_SQL_VIEWS,
    }
    url = settings.SUPPORT_SQL_DATABASE_URL
    if url:
        if url.startswith("sqlite:"):
            return SqliteExecutor(dj_database_url.parse(url)["NAME"], **common)
        return _postgres_executor(url, common)
    default = connections["default"]
    if default.vendor == "postgresql":
        db = default.settings_dict
        dsn = _support_dsn(
            db.get("HOST") or None,
            str(db["PORT"]) if db.get("PORT") else None,
            db["NAME"],
            settings.SUPPORT_SQL_ROLE,
            db.get("OPTIONS", {}).get("sslmode"),
        )
        return _postgres_executor(dsn, common)
    if default.vendor == "sqlite":
        return SqliteExecutor(default.settings_dict["NAME"], **common)
    raise DatabaseMisconfigured(UNSUPPORTED_VENDOR.format(vendor=default.vendor))


@functools.lru_cache(maxsize=16)
def _support_dsn(host: str | None, port: str | None, dbname: str, user: str, sslmode: str | None) -> str:
    """The support role's DSN on the default database's server. Cached: every model turn builds run_sql's spec,
    and psycopg parses and quotes the parts each time (the same parts give the same DSN)."""
    return make_conninfo(host=host, port=port, dbname=dbname, user=user, sslmode=sslmode)


def _postgres_executor(dsn: str, common: dict[str, Any]) -> PostgresExecutor:
    return PostgresExecutor(
        dsn, tenant_setting=settings.SUPPORT_SQL_TENANT_SETTING, binding_key=tenant_binding_key(), **common
    )
