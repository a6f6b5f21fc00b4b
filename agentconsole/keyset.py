"""Keyset pagination: a page is the rows after (or before) the last one seen in a fixed order, never an OFFSET, so
the ten-thousandth page costs what the first does. Shared by the console's long lists and the API's.

A cursor is the sort values of one row (e.g. its created_at and id), base64 of JSON: opaque to callers, checked on
the way back in. A cursor this module did not make is a CursorError (400 with a message), never a 500 and never a
silently different page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet

from agentconsole.errors import ApplicationError

CURSOR_INVALID = "The cursor is not one this list gave out; start again from the first page."
CURSOR_MAX_CHARS = 500


class CursorError(ApplicationError):
    status_code = 400


@dataclass(frozen=True)
class KeysetPage:
    items: list[Any]
    next: str  # rows further along the order ("" at the end)
    previous: str  # rows before the first one here ("" on the first page)


def _field(ordering: str) -> tuple[str, bool]:
    """("-created_at") -> ("created_at", descending)."""
    return ordering.lstrip("-"), ordering.startswith("-")


def encode_cursor(row: Model, ordering: tuple[str, ...]) -> str:
    values = []
    for spec in ordering:
        value = getattr(row, _field(spec)[0])
        values.append(value.isoformat() if isinstance(value, datetime) else value)
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, model: type[Model], ordering: tuple[str, ...]) -> list[Any]:
    """The sort values a cursor holds, as the model's fields type them; CursorError for anything else."""
    try:
        if len(cursor) > CURSOR_MAX_CHARS:
            raise ValueError
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if not isinstance(raw, list) or len(raw) != len(ordering):
            raise ValueError
        values = []
        for spec, value in zip(ordering, raw, strict=True):
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise ValueError
            field = model._meta.get_field(_field(spec)[0])
            typed = field.to_python(value)
            if isinstance(typed, datetime):
                if typed.tzinfo is None:
                    raise ValueError
                # In UTC, as the database compares it: near the ends of Python's range this overflows (a 500 when
                # the query converted it).
                typed = typed.astimezone(UTC)
            if isinstance(typed, int) and not -(2**63) <= typed < 2**63:
                raise ValueError
            values.append(typed)
        return values
    except (ValueError, OverflowError, TypeError, binascii.Error, UnicodeDecodeError, ValidationError):
        raise CursorError(CURSOR_INVALID) from None


def _beyond(ordering: tuple[str, ...], values: list[Any], *, backwards: bool) -> Q:
    """Rows strictly after `values` in `ordering` (before them when backwards), as `a <= x AND (a < x OR ...)`,
    which PostgreSQL answers with a range scan of the (a, b) index."""
    condition = Q()
    for position in range(len(ordering) - 1, -1, -1):
        name, descending = _field(ordering[position])
        op = "lt" if descending != backwards else "gt"
        strict = Q(**{f"{name}__{op}": values[position]})
        if position == len(ordering) - 1:
            condition = strict
        else:
            inclusive = Q(**{f"{name}__{op}e": values[position]})
            condition = inclusive & (strict | condition)
    return condition


def _reversed(ordering: tuple[str, ...]) -> list[str]:
    return [spec[1:] if spec.startswith("-") else f"-{spec}" for spec in ordering]


def keyset_page(
    queryset: QuerySet, *, ordering: tuple[str, ...], limit: int, after: str = "", before: str = "", last: bool = False
) -> KeysetPage:
    """One page of `queryset` in `ordering` (whose last field must be unique, e.g. the id): the `limit` rows after
    the `after` cursor, or the `limit` rows before the `before` cursor, or the first `limit` rows — or, with `last`,
    the final `limit` rows. Reads limit + 1 rows to know whether there is more; no count."""
    model = queryset.model
    backwards = bool(before) or last
    page = queryset
    cursor = before or after
    if cursor:
        page = page.filter(_beyond(ordering, decode_cursor(cursor, model, ordering), backwards=backwards))
    page = page.order_by(*(_reversed(ordering) if backwards else ordering))
    rows = list(page[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = (bool(before) and bool(rows)) if backwards else more
    has_previous = more if backwards else bool(after)
    return KeysetPage(
        items=rows,
        next=encode_cursor(rows[-1], ordering) if rows and has_next else "",
        previous=encode_cursor(rows[0], ordering) if rows and has_previous else "",
    )
