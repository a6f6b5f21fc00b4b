"""The offline engine: a deterministic runbook follower, not an LLM, that answers through the same loop and gates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.llm.conversation import (
    ESCALATE_TOOL,
    STOP_END_TURN,
    STOP_TOOL_USE,
    Conversation,
    ModelTurn,
    ToolCall,
)
from agent.playbook import CONDITION_OPERATORS
from agent.tools import builtin_tools

OFFLINE_LABEL = "Offline engine (deterministic runbook follower, not an LLM)"
_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[A-Za-z0-9_]+)*)\}")
_MAX_ATTEMPTS_PER_STEP = 2
MISSING_VALUE = (
    "Runbook step {number} ({tool}) needs {{{name}}}, which no earlier step provided; a human should write it."
)
CONDITION_FAILED = "Runbook step {number} ({tool}) does not apply: {why}."


class OfflineEngine:
    """Follows the workflow's playbook step by step, through the same loop and gates as a model.

    It reacts to what it observes: a retryable error is tried again once, a step with an `alternative` falls
    back to it, a rejection or any other failure escalates to humans with the reason. A step with a `when`
    condition on what an earlier step found runs only if it holds; otherwise it is skipped (or, with
    `"otherwise": "escalate"`, the ticket goes to humans). Texts are filled from the ticket and from what ran:
    `{extend_trial.days}` is the value that executed — a reviewer's edit included — never the playbook's own.
    """

    name = "offline"
    is_llm = False

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn:
        plan = conversation.playbook
        if not plan:
            return self._escalate("There is no runbook playbook for this kind of ticket; a human should take it.")
        step, attempt, variant = 0, 0, "main"
        if conversation.exchanges:
            last = conversation.exchanges[-1]
            if not last.tool_calls:
                return _final("Done.")
            step, attempt, variant = _parse_call_id(last.tool_calls[-1].id)
            result = last.results[-1].observation if last.results else {"ok": False, "message": "no observation"}
            if result.get("ok"):
                step, attempt, variant = step + 1, 0, "main"
            elif result.get("retryable") and attempt + 1 < _MAX_ATTEMPTS_PER_STEP:
                attempt += 1
            elif variant == "main" and plan[step].get("alternative"):
                attempt, variant = 0, "alt"
            else:
                why = result.get("message") or result.get("error_type") or "the step failed"
                return self._escalate(f"Runbook step {step + 1} ({plan[step]['tool']}) could not be completed: {why}")
        skipped: list[str] = []
        while attempt == 0 and variant == "main" and step < len(plan):
            why = _condition_fails(plan[step].get("when"), conversation)
            if not why:
                break
            if plan[step].get("otherwise") == "escalate":
                return self._escalate(CONDITION_FAILED.format(number=step + 1, tool=plan[step]["tool"], why=why))
            skipped.append(f"Skipped runbook step {step + 1} ({plan[step]['tool']}): {why}.")
            step += 1
        if step >= len(plan):
            return _final(" ".join([*skipped, "Every runbook step is done."]))
        spec = plan[step] if variant == "main" else plan[step]["alternative"]
        values = dict(conversation.variables)
        values.setdefault("findings", NOTHING_FOUND)
        missing = _missing_values(spec, values)
        if missing:
            names = ", ".join(f"{{{name}}}" for name in missing)
            return self._escalate(
                f"Runbook step {step + 1} ({spec['tool']}) needs {names}, which this ticket does not have "
                f"({_MISSING_WHY.get(missing[0], 'no value')}); a human must take it."
            )
        args: dict[str, Any] = {}
        for key, value in spec.get("args", {}).items():
            filled = _fill(value, values, quote=_quoting(spec["tool"], key), conversation=conversation)
            if isinstance(filled, _Missing):
                return self._escalate(MISSING_VALUE.format(number=step + 1, tool=spec["tool"], name=filled.name))
            args[key] = filled
        thought = f"Runbook step {step + 1} of {len(plan)}: {spec.get('why') or spec['tool']}"
        if attempt:
            thought += f" (attempt {attempt + 1} after a retryable error)"
        if variant == "alt":
            thought += " (the alternative, after the main step failed)"
        return ModelTurn(
            text=" ".join([*skipped, thought]),
            tool_calls=[ToolCall(id=f"rb-{step}-{attempt}-{variant}", name=spec["tool"], args=args)],
            stop_reason=STOP_TOOL_USE,
        )

    @staticmethod
    def _escalate(reason: str) -> ModelTurn:
        return ModelTurn(
            text=reason,
            tool_calls=[ToolCall(id="rb-escalate", name=ESCALATE_TOOL, args={"reason": reason})],
            stop_reason=STOP_TOOL_USE,
        )


def _final(text: str) -> ModelTurn:
    return ModelTurn(text=text, tool_calls=[], stop_reason=STOP_END_TURN)


def _parse_call_id(call_id: str) -> tuple[int, int, str]:
    _, step, attempt, variant = call_id.split("-")
    return int(step), int(attempt), variant


@dataclass(frozen=True)
class _Missing:
    name: str


def _latest(conversation: Conversation, tool: str) -> dict[str, Any] | None:
    """The observation of the most recent call of `tool`, if any."""
    for exchange in reversed(conversation.exchanges):
        for result in reversed(exchange.results):
            if result.name == tool:
                return result.observation
    return None


def _path(value: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _executed(conversation: Conversation, name: str) -> Any:
    """{tool.field}: what the latest successful call of `tool` ran with (its executed arguments), else its data."""
    tool, _, field_path = name.partition(".")
    observation = _latest(conversation, tool)
    if not observation or not observation.get("ok"):
        return _Missing(name)
    executed = (observation.get("meta") or {}).get("executed_args") or {}
    head = field_path.split(".", 1)[0]
    value = _path(executed, field_path) if head in executed else _path(observation.get("data"), field_path)
    return _Missing(name) if value is None else value


def _condition_fails(condition: dict[str, Any] | None, conversation: Conversation) -> str:
    """Why a step's `when` does not hold, or "" when it holds (or there is none)."""
    if not condition:
        return ""
    tool = condition["tool"]
    observation = _latest(conversation, tool)
    if observation is None:
        return f"{tool} has not run"
    if not observation.get("ok"):
        return f"{tool} failed"
    if "field" not in condition:
        return ""
    name = condition["field"]
    value = _path(observation.get("data"), name)
    for operator in CONDITION_OPERATORS:
        if operator in condition and not _holds(operator, value, condition[operator]):
            shown = json.dumps(value, default=str)
            expected = condition[operator]
            if operator == "nonempty":
                return f"{tool} found {name} {shown}, needed {'not empty' if expected else 'empty'}"
            return f"{tool} found {name} = {shown}, needed {operator.replace('_', ' ')} {json.dumps(expected)}"
    return ""


def _holds(operator: str, value: Any, expected: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if operator == "above":
        return number and value > expected
    if operator == "below":
        return number and value < expected
    if operator == "equals":
        return value == expected
    if operator == "not_equals":
        return value != expected
    return bool(value) == bool(expected)  # nonempty


# Values that may be empty in a note; any other placeholder with no value stops the runbook (never `email = ''`).
_MAY_BE_EMPTY = frozenset({"findings", "routing", "history", "latest_comment", "full_data"})
_MISSING_WHY = {
    "requester_email": "the helpdesk has no e-mail for the requester",
    "ticket_email": "the helpdesk has no e-mail for the requester",
    "requester_name": "the helpdesk has no name for the requester",
    "tenant_id": "the ticket's organization is not linked to a tenant",
}
NOTHING_FOUND = "• nothing found yet"


def _placeholders(value: Any) -> list[str]:
    return _PLACEHOLDER.findall(value) if isinstance(value, str) else []


def _missing_values(spec: dict[str, Any], values: dict[str, str]) -> list[str]:
    used = [name for value in spec.get("args", {}).values() for name in _placeholders(value)]
    return [
        name for name in dict.fromkeys(used) if name in values and not str(values[name]) and name not in _MAY_BE_EMPTY
    ]


def _quoting(tool: str, arg: str) -> Callable[[str], str]:
    """How a value is written into a templated argument, as the tool declares it (Tool.template_quote). Only the
    product's own tools write arguments in a query language; a company's contract tools take typed JSON arguments
    and write values as they are, so they are not looked up (which would read the database)."""
    declared = builtin_tools().get(tool)
    if declared is None:
        return lambda text: text
    return lambda text: declared.template_quote(arg, text)


def _fill(value: Any, values: dict[str, str], *, quote: Any = None, conversation: Conversation | None = None) -> Any:
    """A templated argument filled in. `{name}` comes from `values`; `{tool.field}` (given the conversation) from what
    the latest successful call of `tool` ran with — a reviewer's edit included — and a whole-value placeholder keeps
    its type. An executed value nothing provided makes the result _Missing; an unknown plain name stays as written."""
    if not isinstance(value, str):
        return value
    escape = quote or (lambda text: text)
    whole = _PLACEHOLDER.fullmatch(value)
    if whole and "." in whole.group(1) and conversation is not None:
        return _executed(conversation, whole.group(1))  # {"days": "{extend_trial.days}"} -> 14
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if "." in name:
            found = _executed(conversation, name) if conversation is not None else _Missing(name)
            if isinstance(found, _Missing):
                missing.append(name)
                return match.group(0)
            return escape(str(found))
        return escape(str(values[name])) if name in values else match.group(0)

    filled = _PLACEHOLDER.sub(substitute, value)
    return _Missing(missing[0]) if missing and conversation is not None else filled
