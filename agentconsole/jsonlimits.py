"""JSON from outside, parsed with limits before anything is stored.

Python's json module accepts what our database cannot keep or our code cannot handle: nesting deep enough to
exhaust the stack, integers of thousands of digits, NaN and Infinity, NUL characters (PostgreSQL refuses them in
text and jsonb) and lone surrogates (not encodable as UTF-8). Each of those is refused here with a 400 that names
the field, so no later layer ever sees it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentconsole.errors import ApplicationError

MAX_DEPTH = 32
MAX_INTEGER = 2**63 - 1  # PostgreSQL's bigint, and what every JSON consumer we talk to can hold
MAX_NUMBER_CHARS = 64

BODY_NOT_JSON = "The body is not valid UTF-8 JSON."
BODY_UNSAFE = "The body holds a value that cannot be accepted."
NESTED_TOO_DEEP = "is nested deeper than {limit} levels"
NUMBER_OUT_OF_RANGE = "is a number out of range (integers must fit in 64 bits; no NaN or Infinity)"
HAS_NUL = "contains a NUL character (\\u0000)"
HAS_LONE_SURROGATE = "contains a lone surrogate (not valid Unicode)"


class UnsafeInput(ApplicationError):
    """Input refused before use. `field` is a dotted path into the body ("" for the body itself)."""

    status_code = 400

    def __init__(self, message: str, *, field: str, problem: str) -> None:
        super().__init__(message, extra={"errors": [{"field": field, "message": problem}]})
        self.field = field
        self.problem = problem


class _OutOfRange:
    """A number we will not hold, kept as a marker so the walk can name its field."""

    __slots__ = ()


_OUT_OF_RANGE = _OutOfRange()


def _parse_int(text: str) -> int | _OutOfRange:
    if len(text) > 20:  # sign + 19 digits; also keeps int() away from Python's 4300-digit conversion limit
        return _OUT_OF_RANGE
    value = int(text)
    return value if -MAX_INTEGER - 1 <= value <= MAX_INTEGER else _OUT_OF_RANGE


def _parse_float(text: str) -> float | _OutOfRange:
    if len(text) > MAX_NUMBER_CHARS:
        return _OUT_OF_RANGE
    value = float(text)
    return value if math.isfinite(value) else _OUT_OF_RANGE


def _parse_constant(text: str) -> _OutOfRange:
    return _OUT_OF_RANGE  # NaN, Infinity, -Infinity: not JSON, and PostgreSQL's jsonb refuses them


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text, or None."""
    if "\x00" in value:
        return HAS_NUL
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return HAS_LONE_SURROGATE
    return None


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def check_value(data: Any, *, path: str = "", max_depth: int = MAX_DEPTH, message: str = BODY_UNSAFE) -> None:
    """Walk parsed JSON without recursion; raise UnsafeInput at the first value we cannot keep."""
    stack: list[tuple[Any, str, int]] = [(data, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= max_depth:
                raise UnsafeInput(message, field=where, problem=NESTED_TOO_DEEP.format(limit=max_depth))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (problem := text_problem(key)):
                    raise UnsafeInput(message, field=where, problem=f"a key {problem}")
                stack.append((item, _join(where, key), depth + 1))
        elif isinstance(value, str):
            if problem := text_problem(value):
                raise UnsafeInput(message, field=where, problem=problem)
        elif isinstance(value, _OutOfRange):
            raise UnsafeInput(message, field=where, problem=NUMBER_OUT_OF_RANGE)


def loads(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON body with limits. Raises UnsafeInput (400) for anything that is not plain, storable JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeInput(BODY_NOT_JSON, field="", problem=str(exc)) from None
    out_of_range: list[str] = []

    def parse_int(number: str) -> int | _OutOfRange:
        value = _parse_int(number)
        if value is _OUT_OF_RANGE:
            out_of_range.append(number)
        return value

    def parse_float(number: str) -> float | _OutOfRange:
        value = _parse_float(number)
        if value is _OUT_OF_RANGE:
            out_of_range.append(number)
        return value

    def parse_constant(name: str) -> _OutOfRange:
        out_of_range.append(name)
        return _OUT_OF_RANGE

    try:
        data = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError:
        raise UnsafeInput(BODY_UNSAFE, field="", problem=NESTED_TOO_DEEP.format(limit=max_depth)) from None
    except ValueError as exc:  # JSONDecodeError and anything int()/float() refuse
        raise UnsafeInput(BODY_NOT_JSON, field="", problem=str(exc)) from None
    # The walk (which names the field) only where something could be wrong. json refuses raw control characters
    # in strings, and valid UTF-8 holds no surrogates: a NUL or a lone surrogate can only come from a \u escape.
    # Nesting is at most the number of brackets.
    if out_of_range or "\\u" in text or text.count("[") + text.count("{") > max_depth:
        check_value(data, max_depth=max_depth)
    return data
