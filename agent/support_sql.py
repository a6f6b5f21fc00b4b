"""Install run_sql's read path on the company's database: the signed tenant binding, the views, the read-only role.

The company's support views are its own SQL (a file of CREATE VIEW statements over its own tables). This service
puts around them what run_sql relies on (docs/sql-guard.md):

- PostgreSQL: the binding key table (its key derived from DJANGO_SECRET_KEY; no role but its owner may read it),
  the SECURITY DEFINER function BOUND_TENANT_FUNCTION the views filter on, then the role SUPPORT_SQL_ROLE, created
  if missing and stripped to USAGE on the schema, EXECUTE on that function and SELECT on exactly these views;
- SQLite: nothing to grant (run_sql opens the file read-only and registers SQLITE_TENANT_FUNCTION itself).

Every view is checked before anything is granted: it must exist, filter on the bound tenant, and (PostgreSQL) be a
security_barrier view. One transaction: a refusal leaves the database as it was. Running it again changes nothing.
"""

# ruff: noqa: S608 - every name put into SQL below is a constant of this module or agent.tools.sql_executor, or was checked
# against IDENTIFIER and is quoted.
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlparse
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from agent.tools.sql_executor import (
    BINDING_KEY_TABLE,
    BOUND_TENANT_FUNCTION,
    SQLITE_TENANT_FUNCTION,
    TENANT_SIGNATURE_SETTING,
    tenant_binding_key,
    tenant_binding_pads,
)
from agentconsole.errors import ApplicationError

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

NO_VIEWS = "Name at least one support view (SUPPORT_SQL_VIEWS or --views)."
BAD_IDENTIFIER = "{kind} {name!r} is not a plain lower-case SQL name (letters, digits and _, at most 63)."
UNSUPPORTED_VENDOR = "Support SQL runs on PostgreSQL and SQLite only, not on {vendor}."
VIEWS_SQL_FAILED = "The views SQL failed at statement {number}: {error}"
VIEW_MISSING = "View {name!r} does not exist. Create it (see docs/sql-guard.md), then run this again."
VIEW_NOT_BOUND = (
    "View {name!r} does not filter on the bound tenant: its WHERE clause must compare the tenant column with "
    "{function}(), or the support role would read every tenant's rows."
)
VIEW_NOT_BARRIER = (
    "View {name!r} is not a security_barrier view: create it WITH (security_barrier) so no function in a query can "
    "see rows of other tenants before the view's filter runs."
)
ROLE_CANNOT_BE_CREATED = (
    "Role {role!r} does not exist and {user!r} may not create roles. Create it as a superuser "
    "(CREATE ROLE {role} LOGIN; see docs/sql-guard.md), then run this again."
)


class SupportSqlRefused(ApplicationError):
    """The install was refused; the message says what to fix. Nothing was changed."""


@dataclass(frozen=True)
class SupportSqlInstalled:
    vendor: str
    views: tuple[str, ...]
    role: str | None  # None on SQLite, which has no roles


# The tenant the views see: the value of the tenant setting, but only when the signature setting holds its
# HMAC-SHA256 under a key in a table the support role cannot read. A query calling set_config() to switch tenants
# therefore switches to no tenant at all. SECURITY DEFINER so it can read the key; search_path pinned.
_POSTGRES_BOUND_TENANT = f"""
CREATE OR REPLACE FUNCTION public.{BOUND_TENANT_FUNCTION}() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.tenant
    FROM (SELECT current_setting('{settings.SUPPORT_SQL_TENANT_SETTING}', true) AS tenant,
                 current_setting('{TENANT_SIGNATURE_SETTING}', true) AS signature) AS b
    WHERE EXISTS (
        SELECT 1 FROM public.{BINDING_KEY_TABLE} AS k
        WHERE encode(sha256(k.opad || sha256(k.ipad || convert_to(b.tenant, 'UTF8'))), 'hex') = b.signature
    )
$$
"""


def _checked_names(kind: str, names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            raise SupportSqlRefused(BAD_IDENTIFIER.format(kind=kind, name=name))
    return tuple(dict.fromkeys(names))


def support_sql_install(
    *,
    connection: BaseDatabaseWrapper,
    views: Sequence[str] | None = None,
    views_sql: str = "",
    role: str | None = None,
) -> SupportSqlInstalled:
    """Install the tenant binding, run `views_sql` (the company's CREATE VIEW statements, may be empty), check every
    view in `views` (default SUPPORT_SQL_VIEWS) and grant `role` (default SUPPORT_SQL_ROLE) SELECT on them alone.

    Raises SupportSqlRefused, with nothing changed, for bad names, a failing statement, a missing view, a view that
    does not filter on the bound tenant, or a role that does not exist and cannot be created.
    """
    names = _checked_names("View", settings.SUPPORT_SQL_VIEWS if views is None else views)
    if not names:
        raise SupportSqlRefused(NO_VIEWS)
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise SupportSqlRefused(UNSUPPORTED_VENDOR.format(vendor=vendor))
    role_name = _checked_names("Role", [settings.SUPPORT_SQL_ROLE if role is None else role])[0]
    with transaction.atomic(using=connection.alias):
        if vendor == "postgresql":
            _install_binding(connection)
        _run_views_sql(connection, views_sql)
        for name in names:
            _check_view(connection, name)
        if vendor == "sqlite":
            return SupportSqlInstalled(vendor=vendor, views=names, role=None)
        _grant(connection, role_name, names)
    return SupportSqlInstalled(vendor=vendor, views=names, role=role_name)


def _install_binding(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS public.{BINDING_KEY_TABLE} ("
            "ipad bytea NOT NULL, opad bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"REVOKE ALL ON public.{BINDING_KEY_TABLE} FROM PUBLIC")
        ipad, opad = tenant_binding_pads(tenant_binding_key())
        cursor.execute(f"DELETE FROM public.{BINDING_KEY_TABLE}")
        cursor.execute(f"INSERT INTO public.{BINDING_KEY_TABLE} (ipad, opad) VALUES (%s, %s)", [ipad, opad])
        cursor.execute(_POSTGRES_BOUND_TENANT)
        cursor.execute(f"REVOKE ALL ON FUNCTION public.{BOUND_TENANT_FUNCTION}() FROM PUBLIC")


def _run_views_sql(connection: BaseDatabaseWrapper, views_sql: str) -> None:
    statements = [statement for statement in sqlparse.split(views_sql) if statement.strip().strip(";").strip()]
    with connection.cursor() as cursor:
        for number, statement in enumerate(statements, start=1):
            try:
                with transaction.atomic(using=connection.alias):  # a savepoint: the error is reported, not fatal
                    cursor.execute(statement)
            except DatabaseError as exc:
                raise SupportSqlRefused(VIEWS_SQL_FAILED.format(number=number, error=str(exc).strip())) from None


def _check_view(connection: BaseDatabaseWrapper, name: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_get_viewdef(c.oid), coalesce('security_barrier=true' = ANY(c.reloptions), false) "
                "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relname = %s AND c.relkind = 'v'",
                [name],
            )
            function = f"public.{BOUND_TENANT_FUNCTION}"
        else:
            cursor.execute("SELECT sql, 1 FROM sqlite_master WHERE type = 'view' AND name = %s", [name])
            function = SQLITE_TENANT_FUNCTION
        row = cursor.fetchone()
    if row is None:
        raise SupportSqlRefused(VIEW_MISSING.format(name=name))
    definition, barrier = row
    if not re.search(rf"\b{re.escape(function.rpartition('.')[2])}\s*\(\s*\)", definition or ""):
        raise SupportSqlRefused(VIEW_NOT_BOUND.format(name=name, function=function))
    if not barrier:
        raise SupportSqlRefused(VIEW_NOT_BARRIER.format(name=name))


def _grant(connection: BaseDatabaseWrapper, role: str, views: tuple[str, ...]) -> None:
    """Create the role if missing (roles are cluster-wide), then strip it to SELECT on the views."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        user, can_manage_roles = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        exists = cursor.fetchone() is not None
        if not exists and not can_manage_roles:
            raise SupportSqlRefused(ROLE_CANNOT_BE_CREATED.format(role=role, user=user))
        if can_manage_roles:
            # Another database of the cluster may be creating it at the same moment (parallel test databases).
            cursor.execute(f"DO $$ BEGIN CREATE ROLE {quote(role)}; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
            cursor.execute(
                f"ALTER ROLE {quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION "
                "NOBYPASSRLS"
            )
            cursor.execute(f"ALTER ROLE {quote(role)} SET default_transaction_read_only = on")
            cursor.execute(
                f"ALTER ROLE {quote(role)} SET statement_timeout = {int(settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS)}"
            )
            cursor.execute(
                "SELECT g.rolname FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid "
                "JOIN pg_roles AS r ON r.oid = m.member WHERE r.rolname = %s",
                [role],
            )
            for (granted,) in cursor.fetchall():
                cursor.execute(f"REVOKE {quote(granted)} FROM {quote(role)}")
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            cursor.execute(f"REVOKE ALL ON ALL {kind} IN SCHEMA public FROM {quote(role)}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quote(role)}")
        cursor.execute(f"GRANT EXECUTE ON FUNCTION public.{BOUND_TENANT_FUNCTION}() TO {quote(role)}")
        cursor.execute(f"GRANT SELECT ON {', '.join(f'public.{quote(name)}' for name in views)} TO {quote(role)}")
