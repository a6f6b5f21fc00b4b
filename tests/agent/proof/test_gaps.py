"""Knowledge gaps counted by PostgreSQL give exactly the groups, counts and examples that reading every row in Python
gives (the SQLite path), for every kind of reason a model, the runbook follower or a reviewer leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agent.gaps import _gaps_grouped_here, _gaps_grouped_in_sql, knowledge_gaps
from agent.models import AgentRun, ProposedAction, Rating, Step
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL path is PostgreSQL's")

REASONS = [
    "",
    "The agent asked for a human.",
    "Verification of extend_trial failed: the trial end did not move",
    "Verification of extend_trial failed: timeout",
    "Verification of   \trefund failed",
    "Verification of ",
    "Verification ofextend_trial",
    "Runbook step 3 (extend_trial) does not apply: run_sql found nothing.",
    "Runbook step 3 (extend_trial) could not be completed: timeout",
    "Runbook step 12 (reset_cache) needs {tenant}, which no earlier step provided",
    "Runbook step x (extend_trial) is odd",
    "Runbook step 4 (naïve) is not ASCII",
    "Runbook step ٣ (extend_trial) has an Arabic digit",
    "There is no runbook playbook for this kind of ticket; a human should take it.",
    "There is no runbook playbook",
    "50% off_ 'quoted' \\ back\\slash",
    "Überprüfung fehlgeschlagen",
]


def _at(obj, minutes_ago: int, field: str = "created_at") -> None:
    type(obj).objects.filter(pk=obj.pk).update(**{field: timezone.now() - timedelta(minutes=minutes_ago)})


def _history() -> None:
    """Escalated and unmatched runs over every reason, decided proposals and ratings, with ties on time, two
    workflows of one name, answers naming a missing tool, and rows outside the window."""
    first, twin, other = WorkflowFactory(name="Trials"), WorkflowFactory(name="Trials"), WorkflowFactory(name="Cache")
    minutes = iter(range(10, 10_000, 7))
    for n, reason in enumerate(REASONS * 3):
        workflow = (first, twin, other, None)[n % 4]
        run = AgentRunFactory(workflow=workflow, status="escalated", status_reason=reason)
        _at(run, 30 if n % 5 == 0 else next(minutes))  # every fifth at the same minute: ordered by id
    for n in range(5):  # unmatched and not escalated, newer than the escalated ones: still listed after them
        run = AgentRunFactory(workflow=None, status=("completed", "failed")[n % 2], ticket__subject=f"Unmatched {n}")
        _at(run, 1)
    AgentRunFactory(workflow=first, status="completed")  # matched and not escalated: no gap
    old = AgentRunFactory(workflow=first, status="escalated", status_reason="Verification of old failed")
    _at(old, 60 * 24 * 40)  # outside a 30-day window
    missing = ((first, "escalated"), (None, "escalated"), (other, "completed"), (twin, "escalated"), (None, "failed"))
    for workflow, status in missing:
        run = AgentRunFactory(workflow=workflow, status=status, status_reason="Runbook step 2 (a) gave up")
        StepFactory(run=run, kind=Step.Kind.OBSERVATION, tool_name="refund",
                    tool_output={"ok": False, "message": "There is no tool named 'refund'."})  # fmt: skip
        _at(run, 0 if status == "failed" else next(minutes))  # the newest of all, and listed after every escalation
    reviewer = UserFactory()
    for n in range(14):
        action = ProposedActionFactory(
            run=AgentRunFactory(workflow=(first, twin, other, None)[n % 4]),
            tool=("extend_trial", "refund")[n % 2],
            status=("rejected", "responded", "pending")[n % 3],
            decided_by=reviewer,
            decided_at=timezone.now() - timedelta(minutes=5 if n % 4 == 0 else next(minutes)),
            decision_reason=("", "=HYPERLINK(1)", "Too long")[n % 3],
        )
        if n % 2 == 0:
            rating = Rating.objects.create(user=UserFactory(), action=action, value=-1 if n % 3 else 1,
                                           comment=("", "Never 30 days")[n % 4 == 0])  # fmt: skip
            _at(rating, 2 if n % 3 == 1 else next(minutes))
    for n, tool in enumerate(["add_private_note", "", "add_private_note", "route_ticket", ""]):
        step = StepFactory(run=AgentRunFactory(workflow=(first, None, twin)[n % 3]), kind=Step.Kind.ACTION,
                           tool_name=tool)  # fmt: skip
        rating = Rating.objects.create(user=UserFactory(), step=step, value=-1, comment=("Too long", "")[n % 2])
        _at(rating, 2)
    stale = Rating.objects.create(user=UserFactory(), step=StepFactory(run=AgentRunFactory(workflow=first)), value=-1)
    _at(stale, 60 * 24 * 40)


def _groups(groups) -> list:
    return sorted(groups, key=lambda group: (group.cause, group.label))


@pytest.mark.django_db
@pytest.mark.parametrize("days", [30, 90])
def test_it_counts_the_same_gaps_in_sql_as_in_python(days) -> None:
    _history()
    since = timezone.now() - timedelta(days=days)
    in_sql = _groups(_gaps_grouped_in_sql(since))
    assert in_sql == _groups(_gaps_grouped_here(since))

    found = {(group.cause, group.label): group for group in in_sql}
    assert found["step_failed", "Trials: step 3 (extend_trial)"].count == 4  # two workflows named Trials, merged
    assert found["verification_failed", "Trials: refund"].count == 2
    assert found["verification_failed", "Trials: "].count == 1  # "Verification of " names no tool
    assert found["missing_tool", "refund"].count == 2  # the unmatched one is "no workflow"; completed ones never
    assert ("step_failed", "Cache: step 4 (naïve)") not in found  # ASCII names only, in both languages
    unmatched = found["no_workflow", "no workflow matched"]
    # escalated without a workflow, the unmatched five, the two that named a missing tool, and the proposals' and the
    # drafts' own runs
    assert unmatched.count == len(REASONS) * 3 // 4 + 5 + 2 + 3 + 2
    assert "gave up" not in " ".join(e.text for e in unmatched.examples)  # escalated runs first, though older
    drafts = found["reviewer_feedback", "no workflow: a draft thumbs-down"]  # rated at the same minute: newest id first
    assert [example.text for example in drafts.examples] == ["Too long", "(no comment)"]
    assert sum(group.count for group in in_sql if group.label.endswith("rejected")) == 5
    assert (days == 90) == any(group.label == "Trials: old" for group in in_sql)


@pytest.mark.django_db
def test_it_reads_the_gaps_in_a_fixed_number_of_queries() -> None:
    _history()
    with CaptureQueriesContext(connection) as few:
        knowledge_gaps(days=90)
    _history()
    _history()
    with CaptureQueriesContext(connection) as many:
        groups = knowledge_gaps(days=90)
    assert len(many) == len(few) and sum(group.count for group in groups) > 100
    examples = sum(len(group.examples) for group in groups)
    assert AgentRun.objects.count() > examples and ProposedAction.objects.count() > 0
