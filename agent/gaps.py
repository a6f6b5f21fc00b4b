"""Knowledge gaps: what the agent could not work, grouped by why — so the team knows which runbook or API to
document next. Escalated runs are classified by the reason they recorded; rejections, answers and thumbs-down by
the reviewer's own words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
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
# ASCII classes spelled out, so Python's re and PostgreSQL's regular expressions read them alike (_RUN_GROUPS).
_STEP = re.compile(r"^Runbook step ([0-9]+) \(([A-Za-z0-9_]+)\)")
_VERIFIED = re.compile(r"^Verification of [ \t\n\r\f\v]*([^ \t\n\r\f\v]*)")
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
        return "no_workflow", _label("no_workflow", None, "")
    if run_id in missing:
        return "missing_tool", missing[run_id]
    cause, detail = _reason_cause(reason)
    return cause, _label(cause, workflow, detail)


def _reason_cause(reason: str) -> tuple[str, str]:
    """The cause a status reason gives, and what within it (the tool, the step). _RUN_GROUPS says the same in SQL."""
    verified = _VERIFIED.match(reason)
    if verified:
        return "verification_failed", verified.group(1)
    step = _STEP.match(reason)
    if step:
        return "step_failed", f"step {step.group(1)} ({step.group(2)})"
    if reason.startswith("There is no runbook playbook"):
        return "step_failed", "no playbook"
    return "other", ""


def _label(cause: str, workflow: str | None, detail: str) -> str:
    if cause == "no_workflow":
        return "no workflow matched"
    return workflow if cause == "other" else f"{workflow}: {detail}"


def knowledge_gaps(*, days: int = 90) -> list[GapGroup]:
    """Every gap of the last `days`, biggest first: escalated runs by cause, and reviewer feedback by tool."""
    since = timezone.now() - timedelta(days=days)
    groups = _gaps_grouped_in_sql(since) if connection.vendor == "postgresql" else _gaps_grouped_here(since)
    order = list(CAUSES)
    return sorted(groups, key=lambda g: (order.index(g.cause), -g.count, g.label))


def _gaps_grouped_here(since: datetime) -> list[GapGroup]:
    """Every row read and counted in Python: SQLite (the demo's database), and the reference the SQL is tested
    against."""
    groups: dict[tuple[str, str], GapGroup] = {}

    def add(cause: str, label: str, ticket_id: int, external_id: str, text: str) -> None:
        group = groups.setdefault((cause, label), GapGroup(cause, label))
        group.count += 1
        if len(group.examples) < EXAMPLES_SHOWN:
            group.examples.append(Example(ticket_id, external_id, text))

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
        add("reviewer_feedback", _decision_label(workflow_id, workflow, tool, status), ticket_id, external_id,
            decision_reason)  # fmt: skip
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
        add("reviewer_feedback", _rating_label(workflow_id, workflow, tool), ticket_id, external_id,
            row[11] or "(no comment)")  # fmt: skip
    return list(groups.values())


def _decision_label(workflow_id: int | None, workflow: str | None, tool: str, status: str) -> str:
    verb = "rejected" if status == ProposedAction.Status.REJECTED else "answered"
    return f"{'no workflow' if workflow_id is None else workflow}: {tool} {verb}"


def _rating_label(workflow_id: int | None, workflow: str | None, tool: str) -> str:
    return f"{'no workflow' if workflow_id is None else workflow}: {tool} thumbs-down"


# PostgreSQL counts the groups and keeps each one's first three ids (array_agg in the page's order); only those
# examples are then read with their tickets. At 100k tickets / 90 days this replaced reading ~28,000 rows into Python
# (bench/pages.py). The cause and its detail are _escalation's, said in SQL; tests hold the two to the same answers.
_RUN_GROUPS = r"""
WITH keyed AS (
    SELECT id, workflow_id, created_at, status <> %(escalated)s AS later,
        CASE WHEN workflow_id IS NULL THEN 'no_workflow'
            WHEN status_reason LIKE 'Verification of %%' THEN 'verification_failed'
            WHEN status_reason LIKE 'Runbook step %%' AND status_reason ~ '^Runbook step [0-9]+ \([A-Za-z0-9_]+\)'
                THEN 'step_failed'
            WHEN status_reason LIKE 'There is no runbook playbook%%' THEN 'step_failed'
            ELSE 'other' END AS cause,
        CASE WHEN workflow_id IS NULL THEN ''
            WHEN status_reason LIKE 'Verification of %%'
                THEN substring(status_reason FROM '^Verification of [ \t\n\r\f\v]*([^ \t\n\r\f\v]*)')
            WHEN status_reason LIKE 'Runbook step %%' AND status_reason ~ '^Runbook step [0-9]+ \([A-Za-z0-9_]+\)'
                THEN substring(status_reason FROM '^Runbook (step [0-9]+ \([A-Za-z0-9_]+\))')
            WHEN status_reason LIKE 'There is no runbook playbook%%' THEN 'no playbook'
            ELSE '' END AS detail
    FROM agent_agentrun
    WHERE created_at >= %(since)s AND (status = %(escalated)s OR workflow_id IS NULL) AND id <> ALL(%(missing)s)
)
SELECT (SELECT name FROM agent_workflow WHERE id = keyed.workflow_id), cause, detail, count(*),
    (array_agg(id ORDER BY later, created_at DESC, id DESC))[1:%(shown)s]
FROM keyed GROUP BY workflow_id, cause, detail
"""
# A run's workflow is looked up per decided proposal and per rating (OFFSET 0 keeps each a lookup by primary key):
# PostgreSQL otherwise hashes all 100k runs or proposals to join a few thousand rows.
_DECISION_GROUPS = """
SELECT run.workflow_id, (SELECT name FROM agent_workflow WHERE id = run.workflow_id), p.tool, p.status, count(*),
    (array_agg(p.id ORDER BY p.decided_at DESC, p.id DESC))[1:%(shown)s]
FROM agent_proposedaction p
    CROSS JOIN LATERAL (SELECT workflow_id FROM agent_agentrun WHERE id = p.run_id OFFSET 0) run
WHERE p.decided_at >= %(since)s AND p.status IN (%(rejected)s, %(responded)s)
GROUP BY run.workflow_id, p.tool, p.status
"""
_RATING_GROUPS = """
SELECT target.workflow_id, (SELECT name FROM agent_workflow WHERE id = target.workflow_id), target.tool, count(*),
    (array_agg(rt.id ORDER BY rt.created_at DESC, rt.id DESC))[1:%(shown)s]
FROM agent_rating rt CROSS JOIN LATERAL (
    SELECT a.tool, r.workflow_id FROM agent_proposedaction a JOIN agent_agentrun r ON r.id = a.run_id
    WHERE a.id = rt.action_id
    UNION ALL
    SELECT coalesce(nullif(s.tool_name, ''), 'a draft'), r.workflow_id FROM agent_step s JOIN agent_agentrun r
        ON r.id = s.run_id
    WHERE s.id = rt.step_id
) target
WHERE rt.created_at >= %(since)s AND rt.value = %(down)s
GROUP BY target.workflow_id, target.tool
"""
_MISSING_TOOL_RUNS = """
SELECT r.id, w.name, r.status_reason FROM agent_agentrun r LEFT JOIN agent_workflow w ON w.id = r.workflow_id
WHERE r.id = ANY(%(missing)s) AND r.created_at >= %(since)s AND (r.status = %(escalated)s OR r.workflow_id IS NULL)
"""
# Each example with what orders it among its group's: (escalated first,) newest first, then the highest id.
_EXAMPLES = """
SELECT 'run', r.id, r.status <> %(escalated)s, r.created_at, t.id, t.external_id,
    coalesce(nullif(r.status_reason, ''), t.subject)
FROM agent_agentrun r JOIN tickets_ticket t ON t.id = r.ticket_id WHERE r.id = ANY(%(runs)s)
UNION ALL
SELECT 'action', p.id, false, p.decided_at, t.id, t.external_id, p.decision_reason
FROM agent_proposedaction p JOIN agent_agentrun r ON r.id = p.run_id JOIN tickets_ticket t ON t.id = r.ticket_id
WHERE p.id = ANY(%(actions)s)
UNION ALL
SELECT 'rating', rt.id, false, rt.created_at, t.id, t.external_id, coalesce(nullif(rt.comment, ''), '(no comment)')
FROM agent_rating rt LEFT JOIN agent_proposedaction a ON a.id = rt.action_id LEFT JOIN agent_step s ON s.id = rt.step_id
    JOIN agent_agentrun r ON r.id = coalesce(a.run_id, s.run_id) JOIN tickets_ticket t ON t.id = r.ticket_id
WHERE rt.id = ANY(%(ratings)s)
"""


def _gaps_grouped_in_sql(since: datetime) -> list[GapGroup]:
    """The same groups as _gaps_grouped_here, counted by PostgreSQL."""
    missing = _missing_tools(since)
    params = {
        "since": since, "missing": list(missing), "shown": EXAMPLES_SHOWN, "down": Rating.Value.DOWN.value,
        "escalated": AgentRun.Status.ESCALATED.value, "rejected": ProposedAction.Status.REJECTED.value,
        "responded": ProposedAction.Status.RESPONDED.value,
    }  # fmt: skip
    parts: list[tuple[str, str, int, list[tuple[str, int]]]] = []  # cause, label, count, examples' (source, id)
    # The plans these queries get cost more than PostgreSQL's JIT threshold, though they take a few milliseconds:
    # compiling them took longer than running them.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_RUN_GROUPS, params)
        for workflow, cause, detail, count, ids in cursor.fetchall():
            parts.append((cause, _label(cause, workflow, detail), count, [("run", pk) for pk in ids]))
        cursor.execute(_MISSING_TOOL_RUNS, params)
        for run_id, workflow, reason in cursor.fetchall():
            parts.append((*_escalation(run_id, workflow, reason or "", missing), 1, [("run", run_id)]))
        cursor.execute(_DECISION_GROUPS, params)
        for workflow_id, workflow, tool, status, count, ids in cursor.fetchall():
            label = _decision_label(workflow_id, workflow, tool, status)
            parts.append(("reviewer_feedback", label, count, [("action", pk) for pk in ids]))
        cursor.execute(_RATING_GROUPS, params)
        for workflow_id, workflow, tool, count, ids in cursor.fetchall():
            parts.append(("reviewer_feedback", _rating_label(workflow_id, workflow, tool), count,
                          [("rating", pk) for pk in ids]))  # fmt: skip
        wanted = {"run": [], "action": [], "rating": []}
        for *_, examples in parts:
            for source, pk in examples:
                wanted[source].append(pk)
        cursor.execute(_EXAMPLES, {"escalated": params["escalated"], "runs": wanted["run"],
                                   "actions": wanted["action"], "ratings": wanted["rating"]})  # fmt: skip
        found = {(source, pk): row for source, pk, *row in cursor.fetchall()}
    groups: dict[tuple[str, str], tuple[GapGroup, list]] = {}
    for cause, label, count, examples in parts:
        group, rows = groups.setdefault((cause, label), (GapGroup(cause, label), []))
        group.count += count
        rows += [(pk, *found[source, pk]) for source, pk in examples]
    for group, rows in groups.values():
        rows.sort(key=lambda row: (row[2], row[0]), reverse=True)  # newest first, then the highest id
        rows.sort(key=lambda row: row[1])  # escalated runs before unmatched ones (stable)
        group.examples = [Example(ticket_id, external_id, text) for *_, ticket_id, external_id, text in
                          rows[:EXAMPLES_SHOWN]]  # fmt: skip
    return [group for group, _ in groups.values()]


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
