"""What the model is told about the support views: their names, columns and comments as the database describes
them (agent/tools/sql_views.py), and how run_sql may query them."""

from __future__ import annotations

from django.conf import settings

from agent.tools.sql_views import View

# The sandbox's support views (sandbox migration 0002), for tests and set-up checks; the model's description is
# introspected from the database instead (run_sql_description).
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


def run_sql_description(views: list[View] | None = None) -> str:
    """The description the model reads: the configured views (SUPPORT_SQL_VIEWS) as the database describes them
    (agent/tools/sql_views.py) — names only when `views` is not given or the database cannot be read now."""
    if views is None:
        views = [View(name=name) for name in settings.SUPPORT_SQL_VIEWS]
    listing = "\n".join(view.describe() for view in views)
    return (
        "Run one read-only SQL SELECT over the company's support views. Every view is already limited to this "
        "ticket's tenant: you never filter by tenant, and other tenants' rows are invisible whatever you write. "
        "Use it to look up what the views below hold about the tenant.\n\n"
        f"Views and their columns (type — what it holds):\n{listing}\n\n"
        "Allowed: one SELECT with joins, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT, subqueries, CTEs "
        "(WITH name AS (SELECT ...)) and UNION/INTERSECT/EXCEPT; common functions such as count, sum, avg, min, "
        "max, coalesce, lower, upper, length, date_trunc, extract, now. Refused: anything that writes, any other "
        "table, system catalogs, comments, several statements; a refusal says what to change. "
        'Returns {"columns": [...], "rows": [[...]], "row_count": n, "truncated": bool}: at most '
        f"{settings.SUPPORT_SQL_ROW_CAP} rows (truncated is true when more matched; aggregate or add a LIMIT), "
        f"and a query is stopped after {settings.SUPPORT_SQL_STATEMENT_TIMEOUT_MS} ms."
    )
