"""The tickets view's search, indexed (PostgreSQL only; the demo's SQLite scans, which is fine at its size).

console/ticket_search.py matches free text as `UPPER(subject) LIKE UPPER('%word%')` OR `requester_id = 'word'` OR
`tenant_link_id IN (...)`: a trigram GIN index on UPPER(subject) and a btree on requester_id let PostgreSQL answer
a rare word from the indexes (a BitmapOr) instead of reading every ticket. The indexes belong to the console's
search, not to the ticket model, so they live here and are not in the model state. pg_trgm is a trusted extension
(PostgreSQL 13+): a database owner may create it. Where it cannot be created, the trigram index is skipped and the
search stays a scan. Both are built CONCURRENTLY (the migration is not atomic), so webhooks keep inserting tickets
while a large table is indexed; a build that was interrupted leaves an INVALID index: drop it and migrate again.
"""

from __future__ import annotations

from django.db import migrations

TRIGRAM = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ticket_subject_trgm ON tickets_ticket "
    "USING gin (UPPER(subject::text) gin_trgm_ops)"
)
REQUESTER = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ticket_requester_id ON tickets_ticket (requester_id)"


def create(apps, schema_editor) -> None:  # noqa: ANN001 -- a migration's RunPython signature
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(REQUESTER)
    try:
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # noqa: BLE001 -- no privilege or no contrib package: search without the index
        print(f"\n  console.0004: no trigram index on ticket subjects ({exc}); the search scans instead.")
        return
    schema_editor.execute(TRIGRAM)
    # Statistics of the indexed expression: without them PostgreSQL guesses a common word matches ten tickets, and
    # sorts all its matches instead of reading the newest through the created_at index.
    schema_editor.execute("ANALYZE tickets_ticket")


def drop(apps, schema_editor) -> None:  # noqa: ANN001
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS ticket_subject_trgm")
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS ticket_requester_id")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("console", "0003_reviewer_workspace"),
        ("tickets", "0004_webhook_limits"),
    ]

    operations = [migrations.RunPython(create, drop)]
