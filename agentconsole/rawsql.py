"""Statements written once by hand for the agent loop's hot path, and rows loaded from them without the ORM.

Building a statement with the ORM (a queryset, its compiler, its converters) costs far more CPU than sending it;
on a model turn that writes a few rows it was most of the loop's own cost. These helpers give the column lists,
the parameters (each field's own `get_db_prep_save`) and the loading (each field's own database converters, then
`Model.from_db`) the ORM would, so a hand-written statement reads and writes exactly what the ORM would have. Where
those are known to change nothing (a str for a CharField, an aware datetime on PostgreSQL; a model whose fields are
plain attributes and that no pre_init/post_init receiver watches) they are skipped: the same values, less CPU.
tests/agentconsole/test_rawsql.py holds them to the ORM's.

Statements that join several changes into one (data-modifying WITH) are PostgreSQL's; callers keep a plain
form for SQLite (the embedded demo database), see `postgresql()`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.utils import CursorWrapper
from django.db.models.base import ModelState
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=models.Model)


def postgresql() -> bool:
    return connection.vendor == "postgresql"


def quote(name: str) -> str:
    return f'"{name}"'


@cache
def _fields(model: type[models.Model], without: tuple[str, ...] = ()) -> tuple[models.Field, ...]:
    """The concrete fields, but those named in `without` (left deferred, as QuerySet.defer leaves them)."""
    return tuple(field for field in model._meta.concrete_fields if field.name not in without)


def table(model: type[models.Model]) -> str:
    return quote(model._meta.db_table)


@cache
def columns(model: type[models.Model], alias: str = "", without: tuple[str, ...] = ()) -> str:
    """Every concrete column of the model but the fields named in `without`, in the order `load` reads them."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + quote(field.column) for field in _fields(model, without))


@cache
def width(model: type[models.Model], without: tuple[str, ...] = ()) -> int:
    return len(_fields(model, without))


@cache
def column(model: type[models.Model], name: str) -> str:
    return quote(model._meta.get_field(name).column)


@cache
def _converters(
    model: type[models.Model], vendor: str, without: tuple[str, ...] = ()
) -> tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]:
    """The columns that have converters (each field's own, then the backend's), by position."""
    loaded = []
    for offset, field in enumerate(_fields(model, without)):
        col = field.get_col(model._meta.db_table)
        found = tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection))
        if found:
            loaded.append((offset, found, col))
    return tuple(loaded)


@cache
def _attnames(model: type[models.Model], without: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The attribute names `instance` sets straight into a new instance's __dict__, as Model.__init__ would have set
    them: None when some attribute is not a plain field's (a descriptor of its own, e.g. a file), so it cannot."""
    names = []
    for field in _fields(model, without):
        if getattr(type(getattr(model, field.attname, None)), "__set__", None) not in _PLAIN_SETS:
            return None
        names.append(field.attname)
    return tuple(names)


# What setting a plain field's attribute does on a new instance: DeferredAttribute has no __set__ (the value goes into
# __dict__), and ForeignKeyDeferredAttribute's also clears a related object cached under it, which a new instance has
# not.
_PLAIN_SETS = (getattr(DeferredAttribute, "__set__", None), models.ForeignKey.descriptor_class.__set__)


def instance(model: type[M], values: Sequence[Any], alias: str = DEFAULT_DB_ALIAS, without: tuple[str, ...] = ()) -> M:
    """`model.from_db(alias, None, values)` for a row of every concrete field in order (but those named in
    `without`, deferred): the same instance, built without Model.__init__'s per-field setattr when the model allows it
    (no pre_init/post_init receivers, plain field attributes). A deferred field is one missing from the instance's
    __dict__, as the ORM leaves it: read, it is loaded by a query of its own."""
    names = _attnames(model, without)
    if names is None or pre_init.has_listeners(model) or post_init.has_listeners(model):
        loaded = [field.attname for field in _fields(model, without)] if without else None
        return model.from_db(alias, loaded, values)
    new = model.__new__(model)
    state = new._state = ModelState()
    state.adding, state.db = False, alias
    new.__dict__.update(zip(names, values, strict=True))
    return new


def load(model: type[M], row: Sequence[Any], start: int = 0, without: tuple[str, ...] = ()) -> M:
    """A model instance from `columns(model, without=without)` at `row[start:]`, converted as the ORM converts what
    it reads."""
    values = list(row[start : start + width(model, without)])
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each attribute read through the proxy costs a lookup
    for offset, converters, col in _converters(model, db.vendor, without):
        for convert in converters:
            values[offset] = convert(values[offset], col, db)
    return instance(model, values, without=without)


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
        loaded.append(instance(model, values))
    return loaded


# The fields whose parameter, for a value of exactly this type, is the value itself on PostgreSQL: their
# get_prep_value returns such a value unchanged (to_python) and the backend adapts nothing more (unlike IntegerField's,
# which psycopg gets wrapped in Int4 and the like). NULL is sent as None by all of them, and by JSONField (mapped to
# NoneType: only None goes as it is). Exact classes only: a subclass may prepare its values otherwise.
_AS_IS: dict[type[models.Field], type] = {
    **dict.fromkeys((models.CharField, models.TextField, models.SlugField, models.EmailField, models.URLField), str),
    **dict.fromkeys((models.AutoField, models.BigAutoField, models.SmallAutoField), int),
    models.BooleanField: bool,
    models.JSONField: type(None),
}


@cache
def _as_is(field: models.Field, vendor: str) -> type | None:
    """The type of value `field` sends as it is (see _AS_IS), or None."""
    if vendor != "postgresql":
        return None
    if type(field) is models.ForeignKey:
        return _as_is(field.target_field, vendor)
    if type(field) is models.DateTimeField:
        return datetime.datetime  # an aware one (USE_TZ): psycopg sends it as it is; a naive one warns first
    return _AS_IS.get(type(field))


def _prepared(field: models.Field, value: Any, db: Any) -> Any:
    """field.get_db_prep_save(value), skipped where it would return the value itself."""
    kind = _as_is(field, db.vendor)
    if kind is None or (value is not None and type(value) is not kind):
        return field.get_db_prep_save(value, connection=db)
    if kind is datetime.datetime and value is not None and value.tzinfo is None:
        return field.get_db_prep_save(value, connection=db)  # naive: the ORM warns and makes it aware
    return value


def prep(model: type[models.Model], name: str, value: Any) -> Any:
    """The parameter the ORM would send for this field's value."""
    return _prepared(model._meta.get_field(name), value, connections[DEFAULT_DB_ALIAS])


def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement that returns rows (a SELECT, or a change with RETURNING); its rows. Through Django's cursor,
    as any query: execute wrappers (the statement counters of tests and benches), debug cursors and error mapping
    see it."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    cursor = _kept_cursor(db)
    cursor.execute(sql, params)
    return cursor.fetchall()


def run(sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement that returns no rows (a change without RETURNING), as execute; the rows it changed."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount
    cursor = _kept_cursor(db)
    cursor.execute(sql, params)
    return cursor.rowcount


_KEPT = "_rawsql_cursor"


def _kept_cursor(db: Any) -> Any:
    """A Django cursor of this PostgreSQL connection: the one the previous statement used while it is still one
    Django would hand out — same connection, still open, no health check due, no debug cursor wanted — else a new
    one, kept. Creating and closing a cursor for every statement cost a quarter of what sending a small one does."""
    kept = db.__dict__.get(_KEPT)
    if (
        type(kept) is CursorWrapper
        and db.connection is not None
        and kept.cursor.connection is db.connection
        and not kept.cursor.closed
        and (db.health_check_done or not db.health_check_enabled)
        and not db.queries_logged
    ):
        return kept
    cursor = db.__dict__[_KEPT] = db.cursor()  # a debug cursor is never used again (type above)
    return cursor


@cache
def _insertable(model: type[models.Model], vendor: str) -> tuple[tuple[tuple[models.Field, bool], ...], str, str]:
    fields = tuple(field for field in _fields(model) if not field.primary_key)
    # Every value cast to its column's type: a column that is NULL in every row still has one.
    casts = [f"%s::{field.db_type(connection)}" for field in fields] if vendor == "postgresql" else None
    row = f"({', '.join(casts or ['%s'] * len(fields))})"
    # Whose pre_save is more than reading the attribute (auto_now, auto_now_add, files).
    plain = tuple((field, type(field).pre_save is models.Field.pre_save) for field in fields)
    return plain, ", ".join(quote(field.column) for field in fields), row


def _insert_parts(objs: Sequence[models.Model]) -> tuple[str, str, list[Any]]:
    db = connections[DEFAULT_DB_ALIAS]
    fields, names, row = _insertable(type(objs[0]), db.vendor)
    params: list[Any] = []
    for obj in objs:
        params.extend(
            _prepared(field, getattr(obj, field.attname) if plain else field.pre_save(obj, True), db)
            for field, plain in fields
        )
    return names, ", ".join([row] * len(objs)), params


def insert_parts(objs: Sequence[models.Model]) -> tuple[str, str, list[Any]]:
    """The column list, the VALUES rows and the parameters of these unsaved rows of one model, for an INSERT the
    caller writes (then `inserted` for each row)."""
    return _insert_parts(objs)


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
