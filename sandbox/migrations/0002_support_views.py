# The sandbox company's support views (sandbox/sql/), installed as any company installs its own: by the product's
# `support_sql_install` command, which adds the signed tenant binding the views filter on and the read-only role
# that may read them and nothing else. See docs/sql-guard.md.
#
# A later migration that alters a column these views read must drop the views first and recreate them afterwards
# (PostgreSQL refuses to change a column a view uses; SQLite's table rebuild fails on a view of the old table).
from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from django.core.management import call_command
from django.db import migrations

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
# The views the files create, by name (the same six in both dialects).
VIEWS = tuple(
    re.findall(
        r"^CREATE (?:OR REPLACE )?VIEW (?:public\.)?(\w+)", (SQL_DIR / "support_views.postgresql.sql").read_text(), re.M
    )
)


def create_support_views(apps: object, schema_editor: object) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        logger.warning("No support views on %s: run_sql supports PostgreSQL and SQLite only.", vendor)
        return
    call_command(
        "support_sql_install",
        views_sql=SQL_DIR / f"support_views.{vendor}.sql",
        views=",".join(VIEWS),
        stdout=io.StringIO(),
    )


def drop_support_views(apps: object, schema_editor: object) -> None:
    """Drop the sandbox's views; the product's tenant binding and the role stay (install is idempotent)."""
    for name in VIEWS:
        schema_editor.execute(f"DROP VIEW IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0001_initial")]
    operations = [migrations.RunPython(create_support_views, drop_support_views)]
