"""The pages of issue 14: a workflow's versions and suite, starting replays and suite runs, a replay's progress and
side-by-side result, and the knowledge gaps (with their CSV export)."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from agent.models import Rating, RegressionCase, Replay, ReplayItem, Step
from agent.replay import NO_CASES, NO_TICKETS
from agent.versions import workflow_version_ensure
from agent.views import NOT_A_MEMBER
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def workflow():
    return WorkflowFactory(slug="trials", name="Trials")


@pytest.fixture
def replay(workflow):
    version = workflow_version_ensure(workflow=workflow)
    run = AgentRunFactory(workflow=workflow, status="completed", ticket__external_id="7001")
    replay = Replay.objects.create(workflow=workflow, version=version, total=2, done=1, status="running")
    ReplayItem.objects.create(
        replay=replay, position=0, ticket=run.ticket, source_run=run, verdict="differs", outcome="completed",
        effects=[{"tool": "extend_trial", "args": {"days": 3}, "risk": "write", "original": "not in the original run"}],
        original={"status": "completed", "calls": [{"tool": "extend_trial", "args": {"days": 7}, "label": "approved"}]},
    )  # fmt: skip
    ReplayItem.objects.create(replay=replay, position=1, ticket=AgentRunFactory(workflow=workflow).ticket)
    return replay


def _urls(workflow, replay) -> dict[str, str]:
    return {
        "versions": f"/workflows/{workflow.slug}/versions/",
        "replay": f"/workflows/replays/{replay.pk}/",
        "gaps": "/workflows/gaps/",
        "csv": "/workflows/gaps.csv",
    }


def test_it_guards_every_page(anonymous, outsider, reviewer, admin, workflow, replay) -> None:
    for url in _urls(workflow, replay).values():
        assert anonymous.get(url).status_code == 302
        response = outsider.get(url)
        assert response.status_code == 403 and NOT_A_MEMBER in response.content.decode()
        assert reviewer.get(url).status_code == 200
        assert admin.get(url).status_code == 200
        assert admin.post(url).status_code == 405
    for action in ("replay", "suite"):
        url = f"/workflows/{workflow.slug}/{action}/"
        assert anonymous.post(url).status_code == 302
        assert outsider.post(url).status_code == 403
        assert reviewer.post(url, {"limit": 5}).status_code == 403
        assert admin.get(url).status_code == 405
    assert not Replay.objects.exclude(pk=replay.pk).exists()
    assert admin.get("/workflows/replays/999999/").status_code == 404
    assert admin.post("/workflows/nope/replay/", {"limit": 5}).status_code == 404


def test_it_shows_progress_and_the_side_by_side_result_and_polls_while_running(reviewer, replay) -> None:
    body = reviewer.get(f"/workflows/replays/{replay.pk}/").content.decode()
    assert "1 of 2 tickets" in body and 'hx-trigger="every 1s"' in body
    assert "extend_trial {&#x27;days&#x27;: 7}</code> — approved" in body  # the original, beside
    assert "extend_trial {&#x27;days&#x27;: 3}</code> — would be sent; original: not in the original run" in body
    fragment = reviewer.get(f"/workflows/replays/{replay.pk}/", headers=HTMX).content.decode()
    assert fragment.strip().startswith('<div id="replay-body"') and "<html" not in fragment

    Replay.objects.filter(pk=replay.pk).update(status="done", done=2)
    assert (
        'hx-trigger="every 1s"' not in reviewer.get(f"/workflows/replays/{replay.pk}/", headers=HTMX).content.decode()
    )


def test_it_starts_a_replay_of_the_workflows_past_tickets(admin, workflow, django_capture_on_commit_callbacks) -> None:
    AgentRunFactory(workflow=workflow, status="completed", trigger="ticket_created")
    AgentRunFactory(workflow=workflow, status="running", trigger="ticket_created")  # not ended: not replayed
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin.post(f"/workflows/{workflow.slug}/replay/", {"limit": 10}, headers=HTMX)
    assert response.status_code == 200
    replay = Replay.objects.get(kind="replay")
    assert response["HX-Redirect"] == f"/workflows/replays/{replay.pk}/"
    assert (replay.total, replay.items.count(), replay.status, len(callbacks)) == (1, 1, "queued", 1)
    assert admin.post(f"/workflows/{workflow.slug}/replay/", {"limit": 10})["Location"] == (
        f"/workflows/replays/{Replay.objects.latest('id').pk}/"
    )


@pytest.mark.parametrize("data", [{}, {"limit": "many"}, {"limit": 0}, {"limit": 10**9}, {"limit": "1e400"}])
def test_it_refuses_a_bad_replay_request_with_a_message(admin, workflow, data) -> None:
    AgentRunFactory(workflow=workflow, status="completed", trigger="ticket_created")
    response = admin.post(f"/workflows/{workflow.slug}/replay/", data, headers=HTMX)
    assert response.status_code == 400 and b'role="alert"' in response.content
    assert not Replay.objects.exists()


def test_it_says_when_there_is_nothing_to_replay_or_no_suite(admin, workflow) -> None:
    response = admin.post(f"/workflows/{workflow.slug}/replay/", {"limit": 5}, headers=HTMX)
    assert response.status_code == 400 and NO_TICKETS in response.content.decode()
    response = admin.post(f"/workflows/{workflow.slug}/suite/", headers=HTMX)
    assert response.status_code == 400 and NO_CASES.replace("'", "&#x27;") in response.content.decode()
    assert not Replay.objects.exists()


def test_it_lists_versions_with_their_evidence_and_the_suite(reviewer, workflow) -> None:
    run = AgentRunFactory(workflow=workflow)
    forbid = {"tool": "extend_trial", "args": {"days": 30}}
    RegressionCase.objects.create(
        workflow=workflow, ticket=run.ticket, source_run=run, origin="rejected", forbid_call=forbid, note="Too long"
    )
    workflow.runbook = "Changed."
    workflow.save()
    workflow_version_ensure(workflow=workflow)
    body = reviewer.get(f"/workflows/{workflow.slug}/versions/").content.decode()
    assert body.index(">v2<") < body.index(">v1<")
    assert "runbook" in body and "first version" in body
    assert "Rejected by a reviewer" in body and "Too long" in body
    assert "Run the regression suite" not in body  # reviewers see, admins act


def test_it_groups_escalations_and_feedback_by_cause(reviewer, workflow) -> None:
    def escalated(reason: str, **fields) -> object:
        return AgentRunFactory(status="escalated", status_reason=reason, **fields)

    escalated("Gather context…", workflow=None, ticket__external_id="8001")
    escalated("Runbook step 3 (extend_trial) does not apply: run_sql found …", workflow=workflow)
    escalated("Runbook step 3 (extend_trial) could not be completed: timeout", workflow=workflow)
    escalated("Verification of extend_trial failed: the trial end did not move", workflow=workflow)
    missing = escalated("The agent asked for a human.", workflow=workflow)
    StepFactory(run=missing, kind=Step.Kind.OBSERVATION, tool_name="refund",
                tool_output={"ok": False, "message": "There is no tool named 'refund'."})  # fmt: skip
    action = ProposedActionFactory(run=AgentRunFactory(workflow=workflow), status="rejected",
                                   decided_by=UserFactory(), decided_at=timezone.now(),
                                   decision_reason="=HYPERLINK(\"http://evil\")")  # fmt: skip
    Rating.objects.create(user=UserFactory(), action=action, value=-1, comment="Never 30 days")

    body = reviewer.get("/workflows/gaps/").content.decode()
    for text in ("No matching workflow", "Missing tool", "refund", "Trials: step 3 (extend_trial)",
                 "Verification failed", "Trials: reset_tenant_cache rejected", "Never 30 days", "#8001"):  # fmt: skip
        assert text in body
    assert '<td data-testid="gap-count">2</td>' in body  # the two failures of step 3

    response = reviewer.get("/workflows/gaps.csv?days=30")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["cause", "what", "count", "example tickets", "example reasons"]
    rejected = next(row for row in rows if row[1] == "Trials: reset_tenant_cache rejected")
    assert rejected[4] == '\'=HYPERLINK("http://evil")'  # never evaluated as a formula
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_it_counts_unmatched_runs_and_thumbs_down_on_drafts_with_their_workflow_or_none(reviewer, workflow) -> None:
    AgentRunFactory(status="completed", workflow=None, status_reason="", ticket__subject="Where is my invoice?")
    note = StepFactory(run=AgentRunFactory(workflow=workflow), kind=Step.Kind.ACTION, tool_name="add_private_note")
    untitled = StepFactory(run=AgentRunFactory(workflow=None), kind=Step.Kind.ACTION, tool_name="")
    Rating.objects.create(user=UserFactory(), step=note, value=-1, comment="Too long")
    Rating.objects.create(user=UserFactory(), step=untitled, value=-1)
    rows = list(csv.reader(io.StringIO(reviewer.get("/workflows/gaps.csv?days=30").content.decode())))
    found = {row[1]: (row[0], row[2], row[4]) for row in rows[1:]}
    cause, count, reasons = found["no workflow matched"]  # the unmatched run, and the one of the untitled draft
    assert (cause, count) == ("No matching workflow", "2") and "Where is my invoice?" in reasons.split(" | ")
    assert found["Trials: add_private_note thumbs-down"] == ("Reviewer feedback", "1", "Too long")
    assert found["no workflow: a draft thumbs-down"] == ("Reviewer feedback", "1", "(no comment)")


@pytest.mark.parametrize("days", ["0", "x", "99999", "-1"])
def test_it_answers_bad_windows_without_a_500(reviewer, days) -> None:
    assert reviewer.get(f"/workflows/gaps/?days={days}").status_code == 200
    response = reviewer.get(f"/workflows/gaps.csv?days={days}")
    assert response.status_code == 400 and response.content


def test_it_never_calls_a_suite_with_skipped_cases_passed(reviewer, workflow) -> None:
    """A case with no recorded run is not replayed; it still blocks promotion, so the suite is not "passed"."""
    version = workflow_version_ensure(workflow=workflow)
    run = AgentRunFactory(workflow=workflow)
    case = RegressionCase.objects.create(
        workflow=workflow, ticket=run.ticket, source_run=run, origin="seeded", forbid_call={"tool": "x"}
    )
    suite = Replay.objects.create(
        workflow=workflow, version=version, kind="suite", total=1, done=1, status="done", passed=True
    )
    ReplayItem.objects.create(replay=suite, position=0, ticket=run.ticket, case=case, case_result="skipped")
    body = reviewer.get(f"/workflows/replays/{suite.pk}/").content.decode()
    assert "Suite passed" not in body
    assert "Suite incomplete: 1 case skipped (no recorded run to replay)" in body
    versions = reviewer.get(f"/workflows/{workflow.slug}/versions/").content.decode()
    assert "incomplete: 1 case skipped" in versions and ">passed</a>" not in versions
    ReplayItem.objects.filter(replay=suite).update(case_result="passed")
    assert "Suite passed" in reviewer.get(f"/workflows/replays/{suite.pk}/").content.decode()
    versions = reviewer.get(f"/workflows/{workflow.slug}/versions/").content.decode()
    assert ">passed</a>" in versions and "incomplete" not in versions


def test_it_answers_a_second_start_with_the_replay_or_suite_run_already_under_way(admin, workflow) -> None:
    """A double click starts one replay (one suite run), not two: while it is queued or running, the same start
    goes to it; once it is over, or with other parameters, a start makes a new one."""
    run = AgentRunFactory(workflow=workflow, status="completed", trigger="ticket_created")
    RegressionCase.objects.create(
        workflow=workflow, ticket=run.ticket, source_run=run, origin="seeded", forbid_call={"tool": "x"}
    )
    for path, kind in (
        (f"/workflows/{workflow.slug}/replay/", "replay"),
        (f"/workflows/{workflow.slug}/suite/", "suite"),
    ):
        first = admin.post(path, {"limit": 10}, headers=HTMX)
        second = admin.post(path, {"limit": 10}, headers=HTMX)
        started = Replay.objects.get(kind=kind)
        assert first["HX-Redirect"] == second["HX-Redirect"] == f"/workflows/replays/{started.pk}/"
        assert admin.post(path, {"limit": 10})["Location"] == f"/workflows/replays/{started.pk}/"
        Replay.objects.filter(pk=started.pk).update(status="running")
        assert admin.post(path, {"limit": 10})["Location"] == f"/workflows/replays/{started.pk}/"
        Replay.objects.filter(pk=started.pk).update(status="done")
        assert admin.post(path, {"limit": 10})["Location"] != f"/workflows/replays/{started.pk}/"
        assert Replay.objects.filter(kind=kind).count() == 2
