"""Knowledge gaps: what the agent could not work, grouped by why — so the team knows which runbook or API to
document next. Escalated runs are classified by the reason they recorded; rejections, answers and thumbs-down by
the reviewer's own words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from agent.catalogue import UNKNOWN_TOOL
from agent.models import AgentRun, ProposedAction, Rating, Step

CAUSES = {
    "no_workflow": "No matching workflow",
    "missing_tool": "Missing tool",
    "step_failed": "Runbook step failed or did not apply",
    "verification_failed": "Verification failed",
    "reviewer_feedback": "Reviewer feedback",
    "other": "Other escalations",
}
EXAMPLES_SHOWN = 3
_STEP = re.compile(r"^Runbook step (\d+) \((\w+)\)")
_UNKNOWN = re.compile(re.escape(UNKNOWN_TOOL).replace(r"\{name!r\}", r"'([^']+)'"))


@dataclass
class Example:
    ticket_id: int
    external_id: str
    text: str


@dataclass
class GapGroup:
    cause: str
    label: str  # what within the cause: the workflow, the tool, the step
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    @property
    def cause_label(self) -> str:
        return CAUSES[self.cause]


def _missing_tools(run_ids: list[int]) -> dict[int, str]:
    """Runs whose model asked for a tool that does not exist, and the tool's name."""
    missing = {}
    for run_id, output in Step.objects.filter(
        run_id__in=run_ids, kind=Step.Kind.OBSERVATION, tool_output__message__startswith="There is no tool named"
    ).values_list("run_id", "tool_output"):
        match = _UNKNOWN.search(str((output or {}).get("message", "")))
        missing[run_id] = match.group(1) if match else "unknown"
    return missing


def _escalation(run: AgentRun, missing: dict[int, str]) -> tuple[str, str]:
    reason = run.status_reason or ""
    if run.workflow is None:
        return "no_workflow", "no workflow matched"
    if run.pk in missing:
        return "missing_tool", missing[run.pk]
    if reason.startswith("Verification of "):
        return "verification_failed", f"{run.workflow.name}: {reason.split()[2]}"
    step = _STEP.match(reason)
    if step:
        return "step_failed", f"{run.workflow.name}: step {step.group(1)} ({step.group(2)})"
    if reason.startswith("There is no runbook playbook"):
        return "step_failed", f"{run.workflow.name}: no playbook"
    return "other", run.workflow.name


def knowledge_gaps(*, days: int = 90) -> list[GapGroup]:
    """Every gap of the last `days`, biggest first: escalated runs by cause, and reviewer feedback by tool."""
    since = timezone.now() - timedelta(days=days)
    groups: dict[tuple[str, str], GapGroup] = {}

    def add(cause: str, label: str, ticket_id: int, external_id: str, text: str) -> None:
        group = groups.setdefault((cause, label), GapGroup(cause, label))
        group.count += 1
        if len(group.examples) < EXAMPLES_SHOWN:
            group.examples.append(Example(ticket_id, external_id, text))

    runs = list(
        AgentRun.objects.filter(created_at__gte=since)
        .filter(status=AgentRun.Status.ESCALATED)
        .select_related("workflow", "ticket")
        .order_by("-created_at", "-id")
    )
    unmatched = AgentRun.objects.filter(created_at__gte=since, workflow__isnull=True).exclude(
        status=AgentRun.Status.ESCALATED
    )
    runs += list(unmatched.select_related("ticket").order_by("-created_at", "-id"))
    missing = _missing_tools([run.pk for run in runs])
    for run in runs:
        cause, label = _escalation(run, missing)
        add(cause, label, run.ticket_id, run.ticket.external_id, run.status_reason or run.ticket.subject)
    decided = (
        ProposedAction.objects.filter(
            decided_at__gte=since,
            status__in=[ProposedAction.Status.REJECTED, ProposedAction.Status.RESPONDED],
        )
        .select_related("run__ticket", "run__workflow")
        .order_by("-decided_at", "-id")
    )
    for action in decided:
        workflow = action.run.workflow.name if action.run.workflow else "no workflow"
        verb = "rejected" if action.status == ProposedAction.Status.REJECTED else "answered"
        add("reviewer_feedback", f"{workflow}: {action.tool} {verb}", action.run.ticket_id,
            action.run.ticket.external_id, action.decision_reason)  # fmt: skip
    for rating in (
        Rating.objects.filter(created_at__gte=since, value=Rating.Value.DOWN)
        .select_related("action__run__ticket", "action__run__workflow", "step__run__ticket", "step__run__workflow")
        .order_by("-created_at", "-id")
    ):
        run = rating.action.run if rating.action_id else rating.step.run
        tool = rating.action.tool if rating.action_id else rating.step.tool_name or "a draft"
        workflow = run.workflow.name if run.workflow else "no workflow"
        add("reviewer_feedback", f"{workflow}: {tool} thumbs-down", run.ticket_id, run.ticket.external_id,
            rating.comment or "(no comment)")  # fmt: skip
    order = list(CAUSES)
    return sorted(groups.values(), key=lambda g: (order.index(g.cause), -g.count, g.label))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe (OWASP's CSV
    injection advice), so "=HYPERLINK(...)" from a ticket's text is never evaluated."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def knowledge_gap_rows(groups: list[GapGroup]) -> list[list[str]]:
    rows = [["cause", "what", "count", "example tickets", "example reasons"]]
    for group in groups:
        rows.append(
            [
                csv_safe(value)
                for value in (
                    group.cause_label,
                    group.label,
                    group.count,
                    " ".join(f"#{e.external_id}" for e in group.examples),
                    " | ".join(e.text for e in group.examples),
                )
            ]
        )
    return rows
