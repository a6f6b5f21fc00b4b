"""What the model is told about the support views: their names and columns, and how run_sql may query them."""

from __future__ import annotations

from django.conf import settings

# What the model may read, for its description. The views themselves are defined in sandbox migration 0002.
SUPPORT_VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "support_tenant_overview": (
        "tenant_id",
        "name",
        "plan (trial|starter|growth|enterprise)",
        "status (trialing|active|past_due|suspended|canceled)",
        "trial_ends_at",
        "cache_version",
        "cache_reset_at",
        "region",
        "created_at",
    ),
    "support_tenant_users": (
        "user_id",
        "tenant_id",
        "email",
        "role",
        "failed_logins",
        "locked",
        "locked_at",
        "last_login_at",
    ),
    "support_login_attempts": ("attempt_id", "tenant_id", "user_id", "email", "attempted_at", "success", "ip_address"),
    "support_subscriptions": (
        "subscription_id",
        "tenant_id",
        "plan",
        "status",
        "seats",
        "monthly_amount_cents",
        "currency",
        "current_period_end",
    ),
    "support_invoices": (
        "invoice_id",
        "tenant_id",
        "number",
        "amount_cents",
        "currency",
        "status (draft|open|paid|void|uncollectible)",
        "issued_at",
        "paid_at",
    ),
    "support_tenant_config": ("tenant_id", "key", "value", "updated_at"),
}


def run_sql_description() -> str:
    views = "\n".join(f"- {view}: {', '.join(columns)}" for view, columns in SUPPORT_VIEW_COLUMNS.items())
    return (
        "Run one read-only SQL SELECT over the company's support views. Every view is already limited to this "
        "ticket's tenant: you never filter by tenant, and other tenants' rows are invisible whatever you write. "
        "Use it to look up the tenant's plan and status, its users and lockouts, login attempts, subscriptions, "
        f"invoices and configuration.\n\nViews and their columns:\n{views}\n\n"
        "Allowed: one SELECT with joins, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT, subqueries, CTEs "
        "(WITH name AS (SELECT ...)) and UNION/INTERSECT/EXCEPT; common functions such as count, sum, avg, min, "
        "max, coalesce, lower, upper, length, date_trunc, extract, now. Refused: anything that writes, any other "
        "table, system catalogs, comments, several statements; a refusal says what to change. "
        'Returns {"columns": [...], "rows": [[...]], "row_count": n, "truncated": bool}: at most '
        f"{settings.SUPPORT_SQL_ROW_CAP} rows (truncated is true when more matched; aggregate or add a LIMIT), "
        f"and a query is stopped after {settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS} ms."
    )
