# What the support views hold, in the database's own words (COMMENT ON VIEW / COLUMN): run_sql's description is
# introspected from these, so a company describes its views where it defines them. PostgreSQL only (SQLite has no
# comments: there the model sees the columns and their types).
from __future__ import annotations

from django.db import migrations

VIEW_COMMENTS = {
    "support_tenant_overview": "One row: the ticket's tenant (plan, status, trial end, cache state, region).",
    "support_tenant_users": "The tenant's users, their role and lockout state.",
    "support_login_attempts": "The tenant's login attempts, newest last; failed ones explain lockouts.",
    "support_subscriptions": "The tenant's subscriptions (plan, seats, monthly amount in cents).",
    "support_invoices": "The tenant's invoices (amounts in cents); a duplicate charge shows as two paid invoices.",
    "support_tenant_config": "The tenant's configuration keys and values.",
}
COLUMN_COMMENTS = {
    ("support_tenant_overview", "plan"): "trial | starter | growth | enterprise",
    ("support_tenant_overview", "status"): "trialing | active | past_due | suspended | canceled",
    ("support_tenant_overview", "cache_version"): "rises by one at every cache reset",
    ("support_tenant_users", "locked"): "true after too many failed logins, until unlocked",
    ("support_login_attempts", "success"): "false for a failed login",
    ("support_invoices", "status"): "draft | open | paid | void | uncollectible",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor != "postgresql":
        return
    for view, text in VIEW_COMMENTS.items():
        schema_editor.execute(f"COMMENT ON VIEW public.{view} IS {_quote(text)}")
    for (view, column), text in COLUMN_COMMENTS.items():
        schema_editor.execute(f"COMMENT ON COLUMN public.{view}.{column} IS {_quote(text)}")


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0002_support_views")]

    operations = [migrations.RunPython(comment, migrations.RunPython.noop)]
