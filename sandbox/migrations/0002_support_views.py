# The read-only support views run_sql may query, the tenant binding they filter on, and (PostgreSQL) the role that
# may read them and nothing else. See docs/sql-guard.md.
#
# A later migration that alters a column these views read must drop the views first and recreate them afterwards
# (PostgreSQL refuses to change a column a view uses; SQLite's table rebuild fails on a view of the old table).
#
# Every name interpolated into SQL below is a constant of this module, of agent.tools.sql_executor or of settings.
# ruff: noqa: S608
from __future__ import annotations

import logging

from django.conf import settings
from django.db import migrations

from agent.tools.sql_executor import (
    BINDING_KEY_TABLE,
    BOUND_TENANT_FUNCTION,
    SQLITE_TENANT_FUNCTION,
    TENANT_SIGNATURE_SETTING,
    tenant_binding_key,
    tenant_binding_pads,
)

logger = logging.getLogger(__name__)

# view -> (columns, base table, tenant column). Nothing support may not see: no password_hash, internal_notes,
# payment_method_last4.
VIEWS = {
    "support_tenant_overview": (
        "t.id AS tenant_id, t.name, t.plan, t.status, t.trial_ends_at, t.cache_version, t.cache_reset_at, t.region, "
        "t.created_at",
        "sandbox_tenant AS t",
        "t.id",
    ),
    "support_tenant_users": (
        "u.id AS user_id, u.tenant_id, u.email, u.role, u.failed_logins, u.locked, u.locked_at, u.last_login_at",
        "sandbox_tenant_user AS u",
        "u.tenant_id",
    ),
    "support_login_attempts": (
        "a.id AS attempt_id, a.tenant_id, a.user_id, a.email, a.attempted_at, a.success, a.ip_address",
        "sandbox_login_attempt AS a",
        "a.tenant_id",
    ),
    "support_subscriptions": (
        "s.id AS subscription_id, s.tenant_id, s.plan, s.status, s.seats, s.monthly_amount_cents, s.currency, "
        "s.current_period_end",
        "sandbox_subscription AS s",
        "s.tenant_id",
    ),
    "support_invoices": (
        "i.id AS invoice_id, i.tenant_id, i.number, i.amount_cents, i.currency, i.status, i.issued_at, i.paid_at",
        "sandbox_invoice AS i",
        "i.tenant_id",
    ),
    "support_tenant_config": (
        "c.tenant_id, c.key, c.value, c.updated_at",
        "sandbox_tenant_config AS c",
        "c.tenant_id",
    ),
}

# The tenant the views see: the value of the tenant setting, but only when the signature setting holds its
# HMAC-SHA256 under a key in a table the support role cannot read. A query calling set_config() to switch tenants
# therefore switches to no tenant at all. SECURITY DEFINER so it can read the key; search_path pinned.
POSTGRES_BOUND_TENANT = f"""
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


def create_support_views(apps: object, schema_editor: object) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _create_postgresql(schema_editor)
    elif vendor == "sqlite":
        for name, (columns, table, tenant) in VIEWS.items():
            # agentconsole_tenant() exists only on run_sql's own connection; anywhere else the views fail to run.
            schema_editor.execute(
                f"CREATE VIEW {name} AS SELECT {columns} FROM {table} WHERE {tenant} = {SQLITE_TENANT_FUNCTION}()"
            )
    else:
        logger.warning("No support views on %s: run_sql supports PostgreSQL and SQLite only.", vendor)


def _create_postgresql(schema_editor: object) -> None:
    execute = schema_editor.execute
    execute(
        f"CREATE TABLE IF NOT EXISTS public.{BINDING_KEY_TABLE} ("
        "ipad bytea NOT NULL, opad bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )
    execute(f"REVOKE ALL ON public.{BINDING_KEY_TABLE} FROM PUBLIC")
    ipad, opad = tenant_binding_pads(tenant_binding_key())
    with schema_editor.connection.cursor() as cursor:  # not schema_editor.execute: it would log the key
        cursor.execute(f"DELETE FROM public.{BINDING_KEY_TABLE}")
        cursor.execute(f"INSERT INTO public.{BINDING_KEY_TABLE} (ipad, opad) VALUES (%s, %s)", [ipad, opad])
    execute(POSTGRES_BOUND_TENANT)
    execute(f"REVOKE ALL ON FUNCTION public.{BOUND_TENANT_FUNCTION}() FROM PUBLIC")
    for name, (columns, table, tenant) in VIEWS.items():
        execute(
            f"CREATE OR REPLACE VIEW public.{name} WITH (security_barrier) AS "
            f"SELECT {columns} FROM public.{table} WHERE {tenant} = public.{BOUND_TENANT_FUNCTION}()"
        )
        execute(f"REVOKE ALL ON public.{name} FROM PUBLIC")
    _set_up_role(schema_editor)


def _set_up_role(schema_editor: object) -> None:
    """Create the support role if missing (roles are cluster-wide), strip it to SELECT on the views."""
    execute, quote = schema_editor.execute, schema_editor.quote_name
    role = settings.SUPPORT_SQL_ROLE
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        can_manage_roles = bool(cursor.fetchone()[0])
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        exists = cursor.fetchone() is not None
    if not exists and not can_manage_roles:
        # Fails closed: without the role run_sql cannot connect. Create it with the SQL in docs/sql-guard.md.
        logger.warning("Role %s does not exist and this user may not create it; run_sql cannot connect.", role)
        return
    if can_manage_roles:
        # Another database of the cluster may be creating it at the same moment (parallel test databases).
        execute(f"DO $$ BEGIN CREATE ROLE {quote(role)}; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        execute(
            f"ALTER ROLE {quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        )
        execute(f"ALTER ROLE {quote(role)} SET default_transaction_read_only = on")
        execute(f"ALTER ROLE {quote(role)} SET statement_timeout = {int(settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS)}")
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT g.rolname FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid "
                "JOIN pg_roles AS r ON r.oid = m.member WHERE r.rolname = %s",
                [role],
            )
            memberships = [row[0] for row in cursor.fetchall()]
        for granted in memberships:
            execute(f"REVOKE {quote(granted)} FROM {quote(role)}")
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        execute(f"REVOKE ALL ON ALL {kind} IN SCHEMA public FROM {quote(role)}")
    execute(f"GRANT USAGE ON SCHEMA public TO {quote(role)}")
    execute(f"GRANT EXECUTE ON FUNCTION public.{BOUND_TENANT_FUNCTION}() TO {quote(role)}")
    execute(f"GRANT SELECT ON {', '.join(f'public.{name}' for name in VIEWS)} TO {quote(role)}")


def drop_support_views(apps: object, schema_editor: object) -> None:
    """Drop the views and the binding; the role stays (it is cluster-wide and may serve other databases)."""
    vendor = schema_editor.connection.vendor
    for name in VIEWS:
        schema_editor.execute(f"DROP VIEW IF EXISTS {name}")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS public.{BOUND_TENANT_FUNCTION}()")
        schema_editor.execute(f"DROP TABLE IF EXISTS public.{BINDING_KEY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0001_initial")]
    operations = [migrations.RunPython(create_support_views, drop_support_views)]
