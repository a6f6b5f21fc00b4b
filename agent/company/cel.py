"""Conditions of effect contracts, in CEL (Common Expression Language, cel-python): compiled when a contract is
imported, evaluated against JSON values when a write is verified. Never Python's eval.

Besides CEL's standard functions (`timestamp()`, `duration()`, `has()`, `size()`, ...), contracts may use
`days(n)`, `hours(n)` and `minutes(n)`: a duration of n days, hours or minutes, so a trial extension reads
`timestamp(after.trial_ends_at) == timestamp(before.trial_ends_at) + days(args.days)`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes

from agentconsole.errors import ApplicationError

DOES_NOT_COMPILE = "The condition {expression!r} does not compile: {error}"
UNKNOWN_NAME = "The condition {expression!r} uses {name!r}; it may use only {known}."
NOT_A_BOOLEAN = "The condition {expression!r} gave {value!r}, not true or false."
EVALUATION_FAILED = "The condition {expression!r} could not be evaluated: {error}"
MACRO_VARIABLE = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")


class ConditionError(ApplicationError):
    pass


def _duration(seconds_per_unit: int) -> Any:
    def make(value: Any) -> celtypes.DurationType:
        return celtypes.DurationType(seconds=int(value) * seconds_per_unit)

    return make


FUNCTIONS = {"days": _duration(86400), "hours": _duration(3600), "minutes": _duration(60)}


GLOBAL_FUNCTIONS = frozenset(
    {"size", "has", "int", "uint", "double", "string", "bytes", "bool", "type", "timestamp", "duration", "dyn",
     "matches", *FUNCTIONS}
)  # fmt: skip
UNKNOWN_FUNCTION = "The condition {expression!r} calls {name}(), which CEL does not have; known: {known}."


def _names(tree: Any, kind: str) -> set[str]:
    names = set()
    for node in tree.iter_subtrees():
        if node.data == kind and node.children:
            names.add(str(node.children[0]))
    return names


@lru_cache(maxsize=512)
def _compiled(expression: str) -> Any:
    env = celpy.Environment()
    try:
        tree = env.compile(expression)
    except Exception as exc:  # CELParseError, or lark's own errors for odd input
        message = " ".join(str(exc).split())[:300]
        raise ConditionError(DOES_NOT_COMPILE.format(expression=expression, error=message)) from exc
    return tree, env.program(tree, functions=FUNCTIONS)


def condition_check(expression: str, *, names: set[str]) -> None:
    """Raise a ConditionError unless `expression` compiles and uses only `names` (and its own macro variables)."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError(DOES_NOT_COMPILE.format(expression=expression, error="it is empty"))
    tree, _ = _compiled(expression)
    allowed = names | set(MACRO_VARIABLE.findall(expression)) | {"null", "true", "false"}
    for name in sorted(_names(tree, "ident") - allowed):
        raise ConditionError(UNKNOWN_NAME.format(expression=expression, name=name, known=", ".join(sorted(names))))
    for name in sorted(_names(tree, "ident_arg") - GLOBAL_FUNCTIONS):
        known = ", ".join(sorted(GLOBAL_FUNCTIONS))
        raise ConditionError(UNKNOWN_FUNCTION.format(expression=expression, name=name, known=known))


def _cel(value: Any) -> Any:
    if isinstance(value, datetime):
        return celtypes.TimestampType(value if value.tzinfo else value.replace(tzinfo=UTC))
    return celpy.json_to_cel(value)


def evaluate(expression: str, variables: dict[str, Any]) -> Any:
    """The value of `expression` with these JSON-like variables (datetimes become CEL timestamps)."""
    _, program = _compiled(expression)
    try:
        return program.evaluate({name: _cel(value) for name, value in variables.items()})
    except Exception as exc:  # CELEvalError: a missing field, a bad timestamp, a type mismatch
        detail = exc.args[0] if getattr(exc, "args", None) else exc
        raise ConditionError(EVALUATION_FAILED.format(expression=expression, error=detail)) from exc


def holds(expression: str, variables: dict[str, Any]) -> bool:
    """Whether a boolean condition holds; a ConditionError when it cannot be evaluated or is not a boolean."""
    value = evaluate(expression, variables)
    if not isinstance(value, celtypes.BoolType | bool):
        raise ConditionError(NOT_A_BOOLEAN.format(expression=expression, value=value))
    return bool(value)


def plain(value: Any) -> Any:
    """A CEL value back as JSON-like Python (for arguments a contract computes)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.TimestampType):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, celtypes.MapType):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [plain(v) for v in value]
    return value
