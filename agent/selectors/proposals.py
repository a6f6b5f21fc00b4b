"""A proposal's context for a reviewer: what the agent found, and what happens after a decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.models import AgentRun, ProposedAction, Step
from agent.policy import Risk

if TYPE_CHECKING:
    from agent.tools.base import Tool


SUMMARY_CHARS = 160


def _short(value: Any, limit: int = SUMMARY_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_text(columns: list[str], row: Any) -> str:
    if isinstance(row, dict):
        pairs = row.items()
    elif isinstance(row, list | tuple):
        pairs = zip(columns, row, strict=False)
    else:
        return _short(row)
    return _short(", ".join(f"{key}={value}" for key, value in pairs))


def observation_summary(output: dict[str, Any] | None) -> str:
    """One line a reviewer can read instead of the raw JSON of an observation (which stays one click away)."""
    if not output:
        return "no result recorded"
    if not output.get("ok"):
        return _short(f"failed ({output.get('error_type') or 'error'}): {output.get('message') or ''}")
    data = output.get("data")
    if isinstance(data, dict):
        if data.get("dry_run"):
            return "dry run: not executed"
        if isinstance(data.get("rows"), list):
            rows = data["rows"]
            if not rows:
                return "no rows"
            first = _row_text(data.get("columns") or [], rows[0])
            more = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
            return _short(f"{len(rows)} row{'s' if len(rows) != 1 else ''}: {first}{more}")
        if isinstance(data.get("events"), list):
            events = data["events"]
            first = f"; latest: {_short(events[0], 100)}" if events else ""
            return f"{len(events)} log event{'s' if len(events) != 1 else ''}{first}"
        if isinstance(data.get("results"), list):
            titles = [str(r.get("title", "")) for r in data["results"] if isinstance(r, dict)]
            return _short(f"{len(titles)} runbook(s): {'; '.join(titles)}") if titles else "no runbook matched"
        scalars = {k: v for k, v in data.items() if isinstance(v, str | int | float | bool) or v is None}
        return _short(", ".join(f"{k}={v}" for k, v in scalars.items()) or data)
    if isinstance(data, list):
        return f"{len(data)} item{'s' if len(data) != 1 else ''}"
    return _short(data if data is not None else "ok")


@dataclass(frozen=True)
class FollowUpStep:
    tool: str
    why: str
    args: dict[str, Any]
    text: str  # the drafted note or reply, for tools that post one
    waits_for_reviewer: bool


@dataclass(frozen=True)
class FollowUp:
    """What happens if the proposal is approved. `known` is False for a model: it decides after it reads the
    result, so only the rules that bind it can be said in advance."""

    runs_now: str
    verification: str
    known: bool
    steps: list[FollowUpStep]
    note: str


MODEL_NEXT = (
    "The model reads the result and then chooses its next step, so it cannot be shown in advance. Whatever it "
    "chooses goes through the same gate: it cannot reply to the customer or solve the ticket until every write "
    "in the run has passed verification."
)
OFFLINE_NEXT = "The offline engine follows the workflow's runbook: after this step it makes these calls, in order."
OFFLINE_NOT_FROM_RUNBOOK = "This call is not a runbook step, so the offline engine's next step is not known."
APPROVAL_RUNS = "Approving runs {tool} against the company's systems."


def _call_position(call_id: str) -> int | None:
    """The runbook step of an offline-engine call id (rb-<step>-<attempt>-<variant>)."""
    parts = call_id.split("-")
    if len(parts) == 4 and parts[0] == "rb" and parts[1].isascii() and parts[1].isdigit():
        return int(parts[1])
    return None


def _draft_text(tool: Tool | None, args: dict[str, Any]) -> str:
    """The text a person would read from this call: a drafted note or reply."""
    return str(args.get(tool.text_arg, "")) if tool is not None and tool.text_arg else ""


def proposal_follow_up(*, run: AgentRun, action: ProposedAction, transcript: list[Step]) -> FollowUp:
    """What approving this proposal leads to, as far as it can honestly be known. Pure: uses the run, its
    workflow and the transcript already loaded."""
    from agent.catalogue import workflow_tools
    from agent.gate import RunState, Verdict, gate_decide
    from agent.llm.conversation import Conversation, Exchange, ToolCall, ToolResult
    from agent.llm.offline import (  # the offline engine's own templating and conditions, not a copy of them
        _condition_fails,
        _fill,
        _Missing,
        _quoting,
    )
    from agent.prompts import _exchanges_of, playbook_values, run_playbook

    tools = workflow_tools(run.workflow)
    tool = tools.get(action.tool)
    runs_now = (tool.approval_effect if tool is not None else "") or APPROVAL_RUNS.format(tool=action.tool)
    verification = tool.verify_summary if tool is not None and tool.verify_summary else ""
    if not run.engine.startswith("offline") and run.engine:
        return FollowUp(runs_now, verification, known=False, steps=[], note=MODEL_NEXT)
    plan = run_playbook(run)
    position = _call_position(action.tool_call_id)
    if position is None or position >= len(plan):
        return FollowUp(runs_now, verification, known=False, steps=[], note=OFFLINE_NOT_FROM_RUNBOOK)
    ticket = run.ticket
    values = playbook_values(run, transcript, plan)
    # As if approved: this call ran with exactly these arguments, so texts that name what ran can be shown.
    ran = Exchange(
        text="",
        tool_calls=[ToolCall(action.tool_call_id, action.tool, action.args)],
        results=[ToolResult(action.tool_call_id, action.tool, {"ok": True, "meta": {"executed_args": action.args}})],
    )
    conversation = Conversation(system_prompt="", ticket_prompt="", exchanges=[*_exchanges_of(transcript), ran])
    # After an approved write passes verification, the gate lets the customer-facing steps run.
    verified = action.risk == Risk.WRITE
    state = RunState(
        phase=run.phase, tenant_id=ticket.tenant_id, workflow=run.workflow, has_verified_approved_write=verified
    )
    steps = []
    for spec in plan[position + 1 :]:
        if _condition_fails(spec.get("when"), conversation):
            if spec.get("otherwise") == "escalate":
                break  # the engine hands the ticket to humans here
            continue  # the engine skips it
        args = {}
        for key, value in (spec.get("args") or {}).items():
            quote = _quoting(str(spec.get("tool", "")), key)
            filled = _fill(value, values, quote=quote, conversation=conversation)
            args[key] = value if isinstance(filled, _Missing) else filled
        name = str(spec.get("tool", ""))
        decision = gate_decide(tool=tools.get(name), name=name, args=args, state=state, available=list(tools))
        steps.append(
            FollowUpStep(
                tool=name,
                why=str(spec.get("why", "")),
                args=args,
                text=_draft_text(tools.get(name), args),
                waits_for_reviewer=decision.verdict == Verdict.PROPOSE,
            )
        )
        if decision.verdict == Verdict.PROPOSE:
            break  # the engine stops at the next proposal; what follows depends on that decision
    return FollowUp(runs_now, verification, known=True, steps=steps, note=OFFLINE_NEXT)
