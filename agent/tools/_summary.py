"""Plain words for tool results: the building blocks of the one-line summaries tools give of what they found
(Tool.summarize). Never raw JSON: values are written as a person would say them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

LINE_MAX = 300


def clip(text: str, limit: int = LINE_MAX) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def when(value: Any) -> str:
    """A time as `2026-11-23 09:58 UTC` (seconds kept when they are there)."""
    moment = value if isinstance(value, datetime) else parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return str(value)
    pattern = "%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M"
    suffix = " UTC" if moment.utcoffset() is not None and not moment.utcoffset() else ""
    return moment.strftime(pattern) + suffix


def clock(value: Any) -> str:
    """The time of day only, `09:58:03` (for lines whose date is plain from the window they come from)."""
    moment = value if isinstance(value, datetime) else parse_datetime(value) if isinstance(value, str) else None
    return moment.strftime("%H:%M:%S") if moment is not None else str(value)


def plain(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and parse_datetime(value) is not None:
        return when(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in list(value.items())[:6])
    if isinstance(value, list):
        return f"{len(value)} item{'s' if len(value) != 1 else ''}"
    return clip(str(value), 120)


def money(cents: Any, currency: Any) -> str:
    try:
        return f"{int(cents) / 100:,.2f} {currency or ''}".strip()
    except (TypeError, ValueError):
        return plain(cents)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def generic(data: Any) -> str:
    """The fallback: a few top-level values in words."""
    if isinstance(data, dict):
        parts = [f"{key} {plain(value)}" for key, value in data.items() if not isinstance(value, dict | list)]
        parts += [f"{key}: {plain(value)}" for key, value in data.items() if isinstance(value, dict | list)]
        return clip("; ".join(parts[:8]) or "no data")
    if isinstance(data, list):
        return count(len(data), "item")
    return clip(plain(data))
