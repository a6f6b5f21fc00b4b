"""The JSON limits walk the parsed body only where something could be wrong; what they refuse stays refused."""

from __future__ import annotations

import json

import pytest

from agentconsole.jsonlimits import (
    HAS_LONE_SURROGATE,
    HAS_NUL,
    NESTED_TOO_DEEP,
    NUMBER_OUT_OF_RANGE,
    UnsafeInput,
    loads,
)


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b'{"a": {"b": "x\\u0000y"}}', "a.b", HAS_NUL),
        (b'{"a": ["ok", "\\udc00"]}', "a.1", HAS_LONE_SURROGATE),
        (b'{"k\\u0000": 1}', "", f"a key {HAS_NUL}"),
        (b'{"a": [1, 9223372036854775808]}', "a.1", NUMBER_OUT_OF_RANGE),
        (b'{"a": -Infinity}', "a", NUMBER_OUT_OF_RANGE),
        (b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", "a" + ".0" * 31, NESTED_TOO_DEEP.format(limit=32)),
    ],
)
def test_it_names_the_field_of_what_it_refuses(body: bytes, field: str, problem: str) -> None:
    with pytest.raises(UnsafeInput) as refused:
        loads(body)
    assert (refused.value.field, refused.value.problem) == (field, problem)


@pytest.mark.parametrize(
    "value",
    [
        {"path": "C:\\users\\me", "text": "Grüße — ok", "nested": [[["32 brackets is fine"]]] * 9},
        {"escaped": "caf\u00e9 \u2603", "max": 2**63 - 1, "min": -(2**63), "float": 1.5e300},
        json.loads("[" * 32 + "]" * 32),
    ],
)
def test_it_keeps_what_it_can_store_escaped_or_not(value: object) -> None:
    for body in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
        assert loads(body.encode()) == value
