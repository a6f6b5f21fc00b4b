"""Knowledge gaps: what the agent could not work, grouped by why — so the team knows which runbook or API to
document next. Escalated runs are classified by the reason they recorded; rejections, answers and thumbs-down by
the reviewer's own words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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


def _missing_tools(since: datetime) -> dict[int, str]:
    """Runs since `since` whose model asked for a tool that does not exist, and the tool's name (the latest it asked
    for). The few such answers are read from their partial index (step_unknown_tool); a list of the window's runs
    (~17,000 at 100k tickets) made PostgreSQL read every step."""
    missing = {}
    for run_id, output in (
        Step.objects.filter(kind=Step.Kind.OBSERVATION, tool_output__message__startswith="There is no tool named")
        .filter(run__created_at__gte=since)
        .order_by("run_id", "index")
        .values_list("run_id", "tool_output")
    ):
        match = _UNKNOWN.search(str((output or {}).get("message", "")))
        missing[run_id] = match.group(1) if match else "unknown"
    return missing


def _escalation(run_id: int, workflow: str | None, reason: str, missing: dict[int, str]) -> tuple[str, str]:
    """A run's cause and label, from its workflow's name (None without a workflow) and its status reason."""
    if workflow is None:
        return "no_workflow", "no workflow matched"
    if run_id in missing:
        return "missing_tool", missing[run_id]
    if reason.startswith("Verification of "):
        return "verification_failed", f"{workflow}: {reason.split()[2]}"
    step = _STEP.match(reason)
    if step:
        return "step_failed", f"{workflow}: step {step.group(1)} ({step.group(2)})"
    if reason.startswith("There is no runbook playbook"):
        return "step_failed", f"{workflow}: no playbook"
    return "other", workflow


def knowledge_gaps(*, days: int = 90) -> list[GapGroup]:
    """Every gap of the last `days`, biggest first: escalated runs by cause, and reviewer feedback by tool."""
    since = timezone.now() - timedelta(days=days)
    groups: dict[tuple[str, str], GapGroup] = {}

    def add(cause: str, label: str, ticket_id: int, external_id: str, text: str) -> None:
        group = groups.setdefault((cause, label), GapGroup(cause, label))
        group.count += 1
        if len(group.examples) < EXAMPLES_SHOWN:
            group.examples.append(Example(ticket_id, external_id, text))

    # Rows as tuples, not models: at 100k tickets 90 days hold ~17,000 escalated runs, and building their models and
    # their tickets' was most of the page's 12 s (bench/pages.py's seed, load ~7).
    run_columns = ("pk", "workflow_id", "workflow__name", "status_reason", "ticket_id", "ticket__external_id")
    runs = list(
        AgentRun.objects.filter(created_at__gte=since)
        .filter(status=AgentRun.Status.ESCALATED)
        .order_by("-created_at", "-id")
        .values_list(*run_columns, "ticket__subject")
    )
    unmatched = AgentRun.objects.filter(created_at__gte=since, workflow__isnull=True).exclude(
        status=AgentRun.Status.ESCALATED
    )
    runs += list(unmatched.order_by("-created_at", "-id").values_list(*run_columns, "ticket__subject"))
    missing = _missing_tools(since)
    for run_id, _, workflow, reason, ticket_id, external_id, subject in runs:
        cause, label = _escalation(run_id, workflow, reason or "", missing)  # no workflow: None (a LEFT JOIN)
        add(cause, label, ticket_id, external_id, reason or subject)
    decided = (
        ProposedAction.objects.filter(
            decided_at__gte=since,
            status__in=[ProposedAction.Status.REJECTED, ProposedAction.Status.RESPONDED],
        )
        .order_by("-decided_at", "-id")
        .values_list("run__workflow_id", "run__workflow__name", "tool", "status", "run__ticket_id",
                     "run__ticket__external_id", "decision_reason")
    )  # fmt: skip
    for workflow_id, workflow, tool, status, ticket_id, external_id, decision_reason in decided:
        workflow = "no workflow" if workflow_id is None else workflow
        verb = "rejected" if status == ProposedAction.Status.REJECTED else "answered"
        add("reviewer_feedback", f"{workflow}: {tool} {verb}", ticket_id, external_id, decision_reason)
    for row in (
        Rating.objects.filter(created_at__gte=since, value=Rating.Value.DOWN)
        .order_by("-created_at", "-id")
        .values_list("action_id", "action__tool", "action__run__workflow_id", "action__run__workflow__name",
                     "action__run__ticket_id", "action__run__ticket__external_id", "step__tool_name",
                     "step__run__workflow_id", "step__run__workflow__name", "step__run__ticket_id",
                     "step__run__ticket__external_id", "comment")
    ):  # fmt: skip
        if row[0] is not None:
            tool, workflow_id, workflow, ticket_id, external_id = row[1:6]
        else:
            tool, workflow_id, workflow, ticket_id, external_id = (row[6] or "a draft"), *row[7:11]
        workflow = "no workflow" if workflow_id is None else workflow
        add("reviewer_feedback", f"{workflow}: {tool} thumbs-down", ticket_id, external_id, row[11] or "(no comment)")
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
