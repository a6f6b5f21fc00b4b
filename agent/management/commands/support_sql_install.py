from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from agent.support_sql import SupportSqlRefused, support_sql_install


class Command(BaseCommand):
    help = (
        "Install run_sql's read path on the database: the signed tenant binding, your support views (--views-sql), "
        "and the read-only role SUPPORT_SQL_ROLE with SELECT on those views alone. Idempotent; see docs/sql-guard.md."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument(
            "--views-sql",
            type=Path,
            help="A file of CREATE [OR REPLACE] VIEW statements run after the binding exists and before the grants.",
        )
        parser.add_argument(
            "--views",
            help="Comma-separated view names to check and grant (default: SUPPORT_SQL_VIEWS).",
        )
        parser.add_argument("--role", help="The read-only role (default: SUPPORT_SQL_ROLE).")

    def handle(self, *args: object, **options: object) -> None:
        views_sql = ""
        path = options["views_sql"]
        if path is not None:
            try:
                views_sql = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read --views-sql {path}: {exc}") from None
        views = None
        if options["views"] is not None:
            views = [name.strip() for name in str(options["views"]).split(",") if name.strip()]
        try:
            installed = support_sql_install(
                connection=connection, views=views, views_sql=views_sql, role=options["role"]
            )
        except SupportSqlRefused as exc:
            raise CommandError(exc.message) from None
        who = f"role {installed.role}" if installed.role else "run_sql's read-only connection"
        self.stdout.write(
            self.style.SUCCESS(
                f"Support SQL installed on {installed.vendor}: {who} may read {len(installed.views)} views "
                f"({', '.join(installed.views)}), each filtered on the bound tenant."
            )
        )
