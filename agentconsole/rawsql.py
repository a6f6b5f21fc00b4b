"""Statements written once by hand for the agent loop's hot path, and rows loaded from them without the ORM.

Building a statement with the ORM (a queryset, its compiler, its converters) costs far more CPU than sending it;
on a model turn that writes a few rows it was most of the loop's own cost. These helpers give the column lists,
the parameters (each field's own `get_db_prep_save`) and the loading (each field's own database converters, then
`Model.from_db`) the ORM would, so a hand-written statement reads and writes exactly what the ORM would have.

Statements that join several changes into one (data-modifying WITH) are PostgreSQL's; callers keep a plain
form for SQLite (the embedded demo database), see `postgresql()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

M = TypeVar("M", bound=models.Model)


def postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return f'"{name}"'


@cache
def _fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(model._meta.concrete_fields)


def table(model: type[models.Model]) -> str:
    return quote(model._meta.db_table)


@cache
def columns(model: type[models.Model], alias: str = "") -> str:
    """Every concrete column of the model, in the order `load` reads them."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote(field.column) for field in _fields(model))


def width(model: type[models.Model]) -> int:
    return len(_fields(model))


def column(model: type[models.Model], name: str) -> str:
    return quote(model._meta.get_field(name).column)


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]:
    """The columns that have converters (each field's own, then the backend's), by position."""
    loaded = []
    for offset, field in enumerate(_fields(model)):
        col = field.get_col(model._meta.db_table)
        found = tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection))
        if found:
            loaded.append((offset, found, col))
    return tuple(loaded)


def load(model: type[M], row: Sequence[Any], start: int = 0) -> M:
    """A model instance from `columns(model)` at `row[start:]`, converted as the ORM converts what it reads."""
    values = list(row[start : start + width(model)])
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each attribute read through the proxy costs a lookup
    for offset, converters, col in _converters(model, db.vendor):
        for convert in converters:
            values[offset] = convert(values[offset], col, db)
    return model.from_db(DEFAULT_DB_ALIAS, None, values)


@cache
def _json_fields(model: type[models.Model]) -> tuple[tuple[str, str, models.Field, bool], ...]:
    return tuple((field.column, field.attname, field, isinstance(field, models.JSONField)) for field in _fields(model))


def load_json(model: type[M], items: Iterable[dict[str, Any]] | str | None) -> list[M]:
    """Model instances from PostgreSQL's `json_agg` of whole rows (a JSON array of objects keyed by column)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = json.loads(items)
    fields = _json_fields(model)
    loaded = []
    for item in items:
        values = [
            item[name] if is_json else field.to_python(item[name]) if item[name] is not None else None
            for name, _attname, field, is_json in fields
        ]
        loaded.append(model.from_db(connection.alias, None, values))
    return loaded


def prep(model: type[models.Model], name: str, value: Any) -> Any:
    """The parameter the ORM would send for this field's value."""
    return model._meta.get_field(name).get_db_prep_save(value, connection=connections[DEFAULT_DB_ALIAS])


def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement that returns rows (a SELECT, or a change with RETURNING); its rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@cache
def _insertable(model: type[models.Model], vendor: str) -> tuple[tuple[models.Field, ...], str, str]:
    fields = tuple(field for field in _fields(model) if not field.primary_key)
    # Every value cast to its column's type: a column that is NULL in every row still has one.
    casts = [f"%s::{field.db_type(connection)}" for field in fields] if vendor == "postgresql" else None
    row = f"({', '.join(casts or ['%s'] * len(fields))})"
    return fields, ", ".join(quote(field.column) for field in fields), row


def _insert_parts(objs: Sequence[models.Model]) -> tuple[str, str, list[Any]]:
    db = connections[DEFAULT_DB_ALIAS]
    fields, names, row = _insertable(type(objs[0]), db.vendor)
    params: list[Any] = []
    for obj in objs:
        params.extend(field.get_db_prep_save(field.pre_save(obj, True), connection=db) for field in fields)
    return names, ", ".join([row] * len(objs)), params


def insert_sql(obj: models.Model) -> tuple[str, list[Any]]:
    """The INSERT of one unsaved row, `RETURNING id`, and its parameters (for audited_change); then `inserted`."""
    names, values, params = _insert_parts([obj])
    model = type(obj)
    pk = quote(model._meta.pk.column)
    return f"INSERT INTO {table(model)} ({names}) VALUES {values} RETURNING {pk}", params  # noqa: S608 - names from the model's meta


def inserted(obj: models.Model, pk_value: Any) -> None:
    obj.pk = pk_value
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS


def insert(objs: Sequence[models.Model], *, guard: str = "", guard_params: Sequence[Any] = ()) -> bool:
    """INSERT these unsaved rows of one model in one statement, setting their primary keys. `guard`: a statement
    (PostgreSQL only, e.g. a conditional UPDATE ... RETURNING id) run in the same statement first; the rows are
    inserted only when it returned a row. False when nothing was inserted. No model validation, as bulk_create."""
    model = type(objs[0])
    names, values, params = _insert_parts(objs)
    pk = quote(model._meta.pk.column)
    if guard:
        sql = (
            f"WITH guard AS ({guard}) INSERT INTO {table(model)} ({names}) "  # noqa: S608 - names from the model's meta
            f"SELECT v.* FROM guard CROSS JOIN (VALUES {values}) v RETURNING {pk}"
        )
        params = [*guard_params, *params]
    else:
        sql = f"INSERT INTO {table(model)} ({names}) VALUES {values} RETURNING {pk}"  # noqa: S608 - as above
    rows = execute(sql, params)
    for obj, (pk_value,) in zip(objs, rows, strict=False):
        inserted(obj, pk_value)
    return bool(rows)
