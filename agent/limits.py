"""Pre-approval limits: what a workflow lets a write do without a human, per argument, over a run and a window.

A workflow's `tool_limits` maps a tool to a spec per argument:

    {"extend_trial": {"days": {"max": 14, "max_per_tenant_per_day": 20}}}

- `max`: for a number, the most the run may add up to without a human — the sum of this argument over the run's
  calls of the tool that have or may have taken effect, this call included (so it also caps a single call); a
  negative amount counts as nothing, so it never makes room for a larger call.
  For anything else the call is simply outside the limits.
- `max_per_tenant_per_day`: the same sum over every run of the ticket's tenant in the last 24 hours.
- `min`: the least a single call may ask for.
- `allowed`: the values a single call may use.

A call that would pass any of these is proposed to a reviewer; a reviewer may approve beyond them. Nothing here
names a tool: the rules are generic over arguments, so tools that declare their own limits reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUM_KEYS = ("max", "max_per_tenant_per_day")
KNOWN_KEYS = frozenset({"max", "min", "allowed", "max_per_tenant_per_day"})
WINDOW_HOURS = 24

LIMITS_NOT_AN_OBJECT = 'Tool limits are an object: {"<tool>": {"<argument>": {"max": 14}}}.'
LIMITS_TOOL_NOT_AN_OBJECT = "The limits of {tool} must be an object of argument names to bounds."
LIMITS_ARG_NOT_AN_OBJECT = 'The limits of {tool}.{arg} must be an object, e.g. {{"max": 14}}.'
LIMITS_UNKNOWN_KEY = "Unknown limit {key!r} on {tool}.{arg}; use one of: {known}."
LIMITS_NOT_A_NUMBER = "{tool}.{arg}.{key} must be a number."
LIMITS_NOT_A_LIST = "{tool}.{arg}.allowed must be a list of values."


def limits_errors(spec: Any) -> list[str]:
    """What is wrong with a tool_limits value: a typo must never silently mean "no limit"."""
    if not isinstance(spec, dict):
        return [LIMITS_NOT_AN_OBJECT]
    errors = []
    for tool, per_arg in spec.items():
        if not isinstance(per_arg, dict):
            errors.append(LIMITS_TOOL_NOT_AN_OBJECT.format(tool=tool))
            continue
        for arg, bounds in per_arg.items():
            if not isinstance(bounds, dict):
                errors.append(LIMITS_ARG_NOT_AN_OBJECT.format(tool=tool, arg=arg))
                continue
            for key, value in bounds.items():
                if key not in KNOWN_KEYS:
                    errors.append(
                        LIMITS_UNKNOWN_KEY.format(key=key, tool=tool, arg=arg, known=", ".join(sorted(KNOWN_KEYS)))
                    )
                elif key == "allowed" and not isinstance(value, list):
                    errors.append(LIMITS_NOT_A_LIST.format(tool=tool, arg=arg))
                elif key != "allowed" and (isinstance(value, bool) or not isinstance(value, int | float)):
                    errors.append(LIMITS_NOT_A_NUMBER.format(tool=tool, arg=arg, key=key))
    return errors


def summed_args(spec: dict[str, Any], tool_name: str) -> list[str]:
    """The arguments of a tool whose values add up against a budget."""
    return [arg for arg, bounds in (spec or {}).get(tool_name, {}).items() if any(key in bounds for key in SUM_KEYS)]


def limits_with_own(spec: dict[str, Any], tool_name: str, own: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The limits a call of the tool is held to: the workflow's, with the tool's own cumulative limits (same words)
    added; where both bound the same sum, the stricter one."""
    if not own:
        return spec or {}
    per_arg = {arg: dict(bounds) for arg, bounds in (spec or {}).get(tool_name, {}).items()}
    for arg, bounds in own.items():
        merged = per_arg.setdefault(arg, {})
        for key in SUM_KEYS:
            if key in bounds:
                merged[key] = min(merged[key], bounds[key]) if key in merged else bounds[key]
    return {**(spec or {}), tool_name: per_arg}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Spent:
    """What earlier calls already used: {tool: {argument: total}} over the run and over the tenant's window."""

    run: dict[str, dict[str, float]] = field(default_factory=dict)
    tenant_window: dict[str, dict[str, float]] = field(default_factory=dict)


def spent_add(totals: dict[str, dict[str, float]], tool_name: str, args: dict[str, Any], names: list[str]) -> None:
    """Add a call's amounts to what was spent. A negative amount spends nothing and gives nothing back: it never buys
    room for a larger call later."""
    for name in names:
        value = _number(args.get(name))
        if value is not None:
            per_tool = totals.setdefault(tool_name, {})
            per_tool[name] = per_tool.get(name, 0.0) + max(value, 0.0)


def limits_exceeded(spec: dict[str, Any], tool_name: str, args: dict[str, Any], spent: Spent) -> str:
    """Why this call is outside the workflow's limits, or "" when it is within them."""
    for arg, bounds in (spec or {}).get(tool_name, {}).items():
        value = args.get(arg)
        number = _number(value)
        if "allowed" in bounds and value not in bounds["allowed"]:
            return f"{arg}={value!r} is not one of the pre-approved values {bounds['allowed']!r}"
        if "min" in bounds and (number is None or number < bounds["min"]):
            return f"{arg}={value!r} is below the pre-approved minimum of {bounds['min']:g}"
        for key, totals, where in (
            ("max", spent.run, "this run"),
            ("max_per_tenant_per_day", spent.tenant_window, f"this tenant in the last {WINDOW_HOURS} hours"),
        ):
            if key not in bounds:
                continue
            if number is None:
                return f"{arg}={value!r} is not a number, so it cannot be held to the pre-approved {key}"
            used = totals.get(tool_name, {}).get(arg, 0.0)
            if used + number > bounds[key]:
                left = max(0.0, bounds[key] - used)
                return (
                    f"{arg}={number:g} would bring {tool_name} to {used + number:g} for {where}, over the "
                    f"pre-approved {bounds[key]:g} ({left:g} left)"
                )
    return ""
