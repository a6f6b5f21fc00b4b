"""What a run found and did, in lines a person reads in seconds: the triage note's findings, a follow-up run's
history of earlier runs, the console's transcript and the Zendesk sidebar. Each read tool summarises its own
result (Tool.summarize); the full data stays in the run's transcript."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.catalogue import get_tool
from agent.models import AgentRun, ProposedAction, Step
from agent.policy import Risk
from agent.tools._summary import clip, generic

logger = logging.getLogger(__name__)

BULLET = "• "
NOTHING_FOUND = "• nothing found yet"


@dataclass(frozen=True)
class Finding:
    tool: str
    line: str
    ok: bool


def finding_of(tool_name: str, args: dict[str, Any] | None, observation: dict[str, Any] | None) -> Finding | None:
    """The finding of one read call's observation; None for anything that is not a read (writes, notes, dry runs)."""
    tool = get_tool(tool_name)
    if tool is None or tool.risk != Risk.READ or not isinstance(observation, dict):
        return None
    data = observation.get("data")
    if isinstance(data, dict) and data.get("dry_run"):
        return None
    if not observation.get("ok"):
        why = observation.get("message") or observation.get("error_type") or "failed"
        return Finding(tool_name, clip(f"{tool_name} could not read: {why}"), ok=False)
    try:
        line = tool.summarize(args or {}, data)
    except Exception:  # a summary must never break a run: fall back to the plain generic one
        logger.exception("summary of %s failed", tool_name)
        line = generic(data)
    return Finding(tool_name, clip(line), ok=True)


def step_findings(steps: Iterable[Step]) -> list[Finding]:
    """The findings of a transcript's observations, in order, each with the arguments its action was called with."""
    ordered = list(steps)
    args = {s.tool_call_id: s.tool_input for s in ordered if s.kind == Step.Kind.ACTION}
    found = []
    for step in ordered:
        if step.kind == Step.Kind.OBSERVATION:
            finding = finding_of(step.tool_name, args.get(step.tool_call_id), step.tool_output)
            if finding is not None:
                found.append(finding)
    return found


def findings_text(findings: list[Finding]) -> str:
    return "\n".join(BULLET + f.line for f in findings) or NOTHING_FOUND


def action_line(action: ProposedAction) -> str:
    """One line for what became of a call that changed something or waited for a person."""
    line = f"{action.tool} {action.get_status_display().lower()}"
    if action.verification in (ProposedAction.Verification.PASSED, ProposedAction.Verification.FAILED):
        line += f", verification {action.verification}"
    if action.status == ProposedAction.Status.REJECTED and action.decision_reason:
        line += f" (reason: {action.decision_reason})"
    tool = get_tool(action.tool)
    text = action.args.get(tool.text_arg) if tool is not None and tool.text_arg else None
    if text is not None and not tool.customer_facing:
        pass  # a note of the run: the note itself is in the conversation
    elif isinstance(text, str):
        line += f": “{clip(text, 160)}”"
    elif action.args:
        line += " with " + ", ".join(f"{k} {v}" for k, v in action.args.items())
    return clip(line, 400)


def run_history(runs: Iterable[AgentRun]) -> str:
    """Earlier runs on a ticket, for a follow-up run: what each found, what it did, how it ended."""
    blocks = []
    for run in runs:
        workflow = run.workflow.name if run.workflow else "no workflow"
        head = f"Run {run.pk} ({workflow}, {run.phase} phase, {run.get_trigger_display().lower()}): "
        head += f"{run.get_status_display().lower()}"
        if run.status_reason:
            head += f" — {clip(run.status_reason, 200)}"
        lines = [head]
        lines += [f"  found: {f.line}" for f in step_findings(run.steps.all())]
        lines += [
            f"  did: {action_line(a)}"
            for a in run.actions.all()
            if a.risk != Risk.READ and a.status != ProposedAction.Status.DRY_RUN
        ]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) or "(no earlier runs)"
