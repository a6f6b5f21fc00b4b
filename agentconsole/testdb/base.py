"""The test settings' PostgreSQL backend: Django's own, except how a transactional test's tables are emptied.

After each transactional test (`transactional_db`, `live_server`, the `company` fixture) Django flushes every table
with one `TRUNCATE`, then lets post_migrate create every content type and permission again. PostgreSQL gives each
truncated table and index a new file, which costs 1-3 s for our ~50 tables however few rows they hold, and the
permissions take ~200 INSERTs: together most of the `company` pass's time. Here the tables are emptied with
`DELETE FROM` each, in milliseconds, except the content types and permissions, which post_migrate would put back
as they were (it still runs, and adds any that is missing). Everything else ends as after the TRUNCATE, sequences
included (the tests' flush never restarts them). Foreign keys are checked at commit (Django creates them DEFERRABLE
INITIALLY DEFERRED; SET CONSTRAINTS covers the rest), so the order of the deletes does not matter. A table whose
triggers refuse DELETE (audit events are append-only) is still truncated, alone. Only settings_test uses this
backend; the product runs on Django's."""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base, operations

# Tables of the given names with a trigger that fires on DELETE (Django's own foreign-key triggers excluded).
DELETE_TRIGGERS_SQL = """
    SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal AND t.tgtype & 8 = 8 AND c.relname = ANY(%s)
      AND c.relnamespace = ANY(current_schemas(false)::regnamespace[])
"""
# What post_migrate creates after every flush: kept instead of deleted and created again.
KEPT = frozenset({"django_content_type", "auth_permission"})


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(
        self, style: Any, tables: list[str], *, reset_sequences: bool = False, allow_cascade: bool = False
    ) -> list[str]:
        if not tables or reset_sequences or allow_cascade:
            return super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        tables = [table for table in tables if table not in KEPT]
        with self.connection.cursor() as cursor:
            cursor.execute(DELETE_TRIGGERS_SQL, [tables])
            guarded = sorted(row[0] for row in cursor.fetchall())
        statements = ["SET CONSTRAINTS ALL DEFERRED;", *super().sql_flush(style, guarded)]
        keyword = style.SQL_KEYWORD("DELETE FROM")
        return statements + [f"{keyword} {style.SQL_FIELD(self.quote_name(t))};" for t in tables if t not in guarded]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
