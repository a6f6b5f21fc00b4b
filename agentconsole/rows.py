"""Row writes the ORM has no one-statement form for."""

from __future__ import annotations

from django.db import connections, models, router


def row_insert_unless_taken(obj: models.Model) -> bool:
    """INSERT an unsaved row unless a unique constraint already holds its like. True, with `obj.pk` set, when it was
    inserted; False when the row is taken.

    One statement (INSERT ... ON CONFLICT DO NOTHING RETURNING pk), where create() in a savepoint that catches the
    IntegrityError costs three. The guarantee is the same: an insert of the same key still in flight in another
    transaction is waited for, and this one inserts only if that one rolls back. Validate first (full_clean) as
    before a save: this runs no model validation.
    """
    meta = obj._meta
    alias = router.db_for_write(type(obj), instance=obj)
    connection = connections[alias]
    fields = [field for field in meta.local_concrete_fields if not (field.primary_key and obj.pk is None)]
    values = [field.get_db_prep_save(field.pre_save(obj, True), connection=connection) for field in fields]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "  # noqa: S608 - names from the model's meta, values as parameters
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = alias
    return True
