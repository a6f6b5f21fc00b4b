"""A workflow's playbook: its runbook as steps the offline engine follows (agent/llm/offline.py), checked when an
admin saves it. Each step is {"tool", "args", "why", "alternative", "when", "otherwise"}."""

from __future__ import annotations

from typing import Any

CONDITION_OPERATORS = ("above", "below", "equals", "not_equals", "nonempty")
OTHERWISE = ("skip", "escalate")


def playbook_errors(playbook: Any) -> list[str]:
    """What is wrong with a playbook, so a typo is caught when an admin saves it rather than mid-run."""
    if not isinstance(playbook, list):
        return ['A playbook is a list of steps: [{"tool": "...", "args": {...}}].']
    errors = []
    for number, step in enumerate(playbook, start=1):
        alternative = step.get("alternative") if isinstance(step, dict) else None
        specs = [(step, f"Step {number}")] + ([(alternative, f"Step {number}'s alternative")] if alternative else [])
        for spec, where in specs:
            if not isinstance(spec, dict) or not isinstance(spec.get("tool"), str):
                errors.append(f"{where} needs a tool name.")
                continue
            if not isinstance(spec.get("args", {}), dict):
                errors.append(f"{where}: args must be an object.")
        if not isinstance(step, dict):
            continue
        condition = step.get("when")
        if condition is not None:
            operators = [key for key in CONDITION_OPERATORS if key in (condition or {})]
            if not isinstance(condition, dict) or not isinstance(condition.get("tool"), str):
                errors.append(f'Step {number}: "when" needs the tool whose result it checks.')
            elif "field" in condition and len(operators) != 1:
                errors.append(f'Step {number}: "when" needs one of {", ".join(CONDITION_OPERATORS)} with its field.')
            elif operators and "field" not in condition:
                errors.append(f'Step {number}: "when" needs the field it compares.')
        if step.get("otherwise", "skip") not in OTHERWISE:
            errors.append(f'Step {number}: "otherwise" is "skip" or "escalate".')
    return errors
