"""Regression cases from reviewer feedback, and how a replay is judged against them."""

from __future__ import annotations

import pytest

from agent.enqueue import SUITE_RERUN
from agent.lifecycle import RUN_STOPPED
from agent.models import RegressionCase, Replay
from agent.replay import REPLAYABLE, replay_execute
from agent.services.actions import proposed_action_approve, proposed_action_reject
from agent.services.governance import rating_set
from agent.services.runs import agent_run_transition
from agent.suites import case_failures, suite_rerun, suite_run_start, suite_unmet
from agent.versions import workflow_version_ensure
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, WorkflowFactory
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db


def test_it_turns_an_edit_a_rejection_and_a_thumbs_down_into_cases(reviewer_user, admin_user) -> None:
    run = AgentRunFactory(workflow=WorkflowFactory(), ticket__tenant_link__tenant_id="acme")
    edited = ProposedActionFactory(run=run, tool="extend_trial", args={"tenant_id": "acme", "days": 30},
                                   tool_call_id="e", status="pending")  # fmt: skip
    rejected = ProposedActionFactory(run=run, tool="reset_tenant_cache", tool_call_id="r", status="pending")
    reply = StepFactory(run=run, kind="action", tool_name="reply_to_customer", tool_input={"body": "All fixed!"})

    proposed_action_approve(action=edited, user=reviewer_user, args={"tenant_id": "acme", "days": 14})
    proposed_action_reject(action=rejected, user=reviewer_user, reason="No cache errors in the logs")
    rating = rating_set(user=admin_user, value=-1, step=reply, comment="Nothing was fixed yet")

    cases = {case.origin: case for case in RegressionCase.objects.all()}
    assert cases["edited"].expect_call == {"tool": "extend_trial", "args": {"tenant_id": "acme", "days": 14}}
    assert cases["edited"].forbid_call == {"tool": "extend_trial", "args": {"tenant_id": "acme", "days": 30}}
    assert cases["rejected"].forbid_call == {"tool": "reset_tenant_cache", "args": {"tenant_id": "acme"}}
    assert cases["rejected"].note == "No cache errors in the logs"
    assert (cases["thumbs_down"].forbid_reply, cases["thumbs_down"].note) == ("All fixed!", "Nothing was fixed yet")
    assert {case.source_run_id for case in cases.values()} == {run.pk}

    rating_set(user=admin_user, value=1, step=reply)  # changed their mind: the case is retired
    assert not RegressionCase.objects.get(source_rating=rating).active
    rating_set(user=admin_user, value=-1, step=reply)
    assert RegressionCase.objects.get(source_rating=rating).active
    assert RegressionCase.objects.count() == 3


def test_it_judges_a_replay_against_a_case() -> None:
    run = AgentRunFactory(workflow=WorkflowFactory())
    case = RegressionCase(
        workflow=run.workflow,
        ticket=run.ticket,
        origin="edited",
        expect_call={"tool": "extend_trial", "args": {"days": 14}},
        forbid_call={"tool": "extend_trial", "args": {"days": 30}},
        forbid_reply="All  fixed!",
    )
    good = [{"tool": "extend_trial", "args": {"tenant_id": "acme", "days": 14}}]
    assert case_failures(case=case, effects=good) == []
    bad = [
        {"tool": "extend_trial", "args": {"tenant_id": "acme", "days": 30}},
        {"tool": "reply_to_customer", "args": {"body": "all fixed!"}},
    ]
    assert case_failures(case=case, effects=bad) == [
        "expected extend_trial(days=14); it was not made",
        "made extend_trial(days=30), which a reviewer corrected",
        "sent the reply a reviewer corrected",
    ]
    case.forbid_call, case.expect_call, case.forbid_reply = {"tool": "reply_to_customer", "args": None}, None, ""
    assert case_failures(case=case, effects=bad) == ["made any reply_to_customer call, which a reviewer corrected"]


def test_it_runs_the_suite_again_once_when_the_run_a_skipped_case_waited_for_stops(
    broker, django_capture_on_commit_callbacks
) -> None:
    """The suite of a new version ran while the case's ticket was still being worked: the case was skipped. When
    that run stops, the suite runs again for the version in force, once; no other run's end sends anything."""
    workflow = WorkflowFactory()
    version = workflow_version_ensure(workflow=workflow)
    working = AgentRunFactory(workflow=workflow, status="running")
    other = AgentRunFactory(workflow=workflow, status="running")
    RegressionCase.objects.create(workflow=workflow, ticket=working.ticket, origin="seeded", forbid_call={"tool": "x"})
    first = replay_execute(replay_id=suite_run_start(version=version, user=None).pk)
    assert first.items.get().case_result == "skipped" and suite_unmet(version=version)
    assert set(REPLAYABLE) == RUN_STOPPED  # a replay answers from exactly the runs whose stop triggers this

    with django_capture_on_commit_callbacks(execute=True):
        agent_run_transition(run=other, status="completed")  # its ticket has no skipped case
    assert not [m for m in queued_task_messages(broker) if m["headers"]["task"] == SUITE_RERUN]
    with django_capture_on_commit_callbacks(execute=True):
        agent_run_transition(run=working, status="awaiting_approval")  # stopped advancing: a recording now
        agent_run_transition(run=working, status="running")
        agent_run_transition(run=working, status="escalated")  # once more: a second message, which does nothing
    sent = [m["headers"]["argsrepr"] for m in queued_task_messages(broker) if m["headers"]["task"] == SUITE_RERUN]
    assert sent == [f"({first.pk},)", f"({first.pk},)"]

    again = suite_rerun(replay_id=first.pk)
    assert again is not None and again.version_id == version.pk and again.status == "queued"
    assert suite_rerun(replay_id=first.pk) is None  # the second message: a newer suite run exists, nothing to do
    assert Replay.objects.filter(kind="suite").count() == 2
    again = replay_execute(replay_id=again.pk)
    assert again.items.get().source_run_id == working.pk and again.items.get().case_result != "skipped"
