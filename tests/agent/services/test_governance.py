from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Exists, OuterRef
from django.utils import timezone

from agent.models import AgentRun, Rating, Workflow
from agent.permissions import NOT_AN_ADMIN
from agent.selectors.evidence import autonomy_unmet_criteria, workflow_evidence
from agent.services.governance import (
    PHASE_CHANGE_NEEDS_REASON,
    RATING_TARGET_INVALID,
    RATING_VALUE_INVALID,
    autonomy_stop_all,
    rating_set,
    workflow_phase_change,
)
from agentconsole.errors import ApplicationError, ConflictError, PermissionDeniedError
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_account():
    return UserFactory(groups=["admins"])


@pytest.fixture
def reviewer_account():
    return UserFactory(groups=["reviewers"])


def _reviewed(workflow: Workflow, reviewer, *, approved: int, edited: int = 0, rejected: int = 0) -> None:
    run = AgentRunFactory(workflow=workflow)
    for n in range(approved + edited + rejected):
        kind = "approved" if n < approved else "edited" if n < approved + edited else "rejected"
        ProposedActionFactory(
            run=run,
            tool_call_id=f"c{n}",
            decided_by=reviewer,
            decided_at=timezone.now(),
            status="rejected" if kind == "rejected" else "executed",
            original_args={"tenant_id": "x"} if kind == "edited" else None,
            decision_reason="Not on a Friday" if kind == "rejected" else "",
            verification="passed" if kind != "rejected" else "not_required",
        )


def test_it_gathers_the_evidence_of_a_workflow(reviewer_account) -> None:
    workflow = WorkflowFactory()
    _reviewed(workflow, reviewer_account, approved=6, edited=2, rejected=2)
    ProposedActionFactory(run=AgentRunFactory(workflow=workflow), verification="failed", tool_call_id="f")
    ProposedActionFactory(run=AgentRunFactory(workflow=WorkflowFactory()), decided_by=reviewer_account)  # another
    started = timezone.now() - timedelta(minutes=10)
    for minutes in (2, 4, 9):
        run = AgentRunFactory(workflow=workflow, status="completed", finished_at=started + timedelta(minutes=minutes))
        AgentRun.objects.filter(pk=run.pk).update(created_at=started)
    action = workflow.runs.first().actions.first()
    Rating.objects.create(user=reviewer_account, action=action, value=1)
    Rating.objects.create(user=UserFactory(), step=StepFactory(run=action.run), value=-1)

    evidence = workflow_evidence(workflow=workflow)

    assert (evidence.reviewed, evidence.approved_unedited, evidence.approved_edited, evidence.rejected) == (10, 6, 2, 2)
    assert evidence.unedited_approval_rate == 0.6
    assert evidence.edit_rate == 0.2
    assert evidence.rejection_reasons == ["Not on a Friday", "Not on a Friday"]
    assert (evidence.verifications_passed, evidence.verifications_failed) == (8, 1)
    assert (evidence.thumbs_up, evidence.thumbs_down) == (1, 1)
    assert (evidence.resolved_runs, evidence.median_resolution_seconds) == (3, 240)


def test_it_gathers_evidence_in_a_fixed_number_of_queries(reviewer_account, django_assert_max_num_queries) -> None:
    workflow = WorkflowFactory()
    _reviewed(workflow, reviewer_account, approved=40, rejected=5)
    with django_assert_max_num_queries(6):
        workflow_evidence(workflow=workflow)


def test_it_blocks_promotion_to_autonomous_until_the_criteria_hold(admin_account, reviewer_account, settings) -> None:
    settings.AUTONOMY_MIN_REVIEWED = 10
    workflow = WorkflowFactory(phase="triage")
    _reviewed(workflow, reviewer_account, approved=8, rejected=1)
    with pytest.raises(ConflictError) as caught:
        workflow_phase_change(workflow=workflow, phase="autonomous", user=admin_account, reason="Looks good")
    assert caught.value.extra["unmet"] == ["9 reviewed proposals, 10 needed", "89% approved unedited, 95% needed"]
    workflow.refresh_from_db()
    assert workflow.phase == "triage"

    _reviewed(workflow, reviewer_account, approved=30)
    assert autonomy_unmet_criteria(evidence=workflow_evidence(workflow=workflow)) == []
    workflow = workflow_phase_change(workflow=workflow, phase="autonomous", user=admin_account, reason="Earned it")
    assert workflow.phase == "autonomous"
    event = AuditEvent.objects.get(verb="workflow.phase_changed")
    assert (event.actor, event.payload["reason"], event.payload["override"]) == (admin_account, "Earned it", False)


def test_it_lets_an_admin_override_with_a_reason_and_records_what_was_unmet(admin_account) -> None:
    workflow = WorkflowFactory(phase="triage")
    workflow_phase_change(workflow=workflow, phase="autonomous", user=admin_account, reason="Incident", override=True)
    payload = AuditEvent.objects.get(verb="workflow.phase_changed").payload
    assert payload["override"] is True
    assert payload["unmet"][0].startswith("0 reviewed proposals")


def test_it_requires_an_admin_and_a_reason(reviewer_account, admin_account) -> None:
    workflow = WorkflowFactory(phase="shadow")
    with pytest.raises(PermissionDeniedError, match=NOT_AN_ADMIN):
        workflow_phase_change(workflow=workflow, phase="triage", user=reviewer_account, reason="please")
    with pytest.raises(ApplicationError, match=PHASE_CHANGE_NEEDS_REASON):
        workflow_phase_change(workflow=workflow, phase="triage", user=admin_account, reason=" ")
    workflow.refresh_from_db()
    assert workflow.phase == "shadow"
    assert not AuditEvent.objects.filter(verb="workflow.phase_changed").exists()


def test_it_stops_all_autonomy_at_once_including_runs_in_flight(admin_account, reviewer_account) -> None:
    autonomous = WorkflowFactory.create_batch(2, phase="autonomous")
    shadow = WorkflowFactory(phase="shadow")
    running = AgentRunFactory(workflow=autonomous[0], phase="autonomous", status="running")
    finished = AgentRunFactory(workflow=autonomous[0], phase="autonomous", status="completed")
    with pytest.raises(PermissionDeniedError):
        autonomy_stop_all(user=reviewer_account, reason="Incident")

    assert autonomy_stop_all(user=admin_account, reason="Incident 4211") == 2

    assert set(Workflow.objects.values_list("phase", flat=True)) == {"triage", "shadow"}
    shadow.refresh_from_db()
    assert shadow.phase == "shadow"
    running.refresh_from_db()
    finished.refresh_from_db()
    assert (running.phase, finished.phase) == ("triage", "autonomous")  # history stays as it was
    assert AuditEvent.objects.filter(verb="workflow.phase_changed", payload__stop_autonomy=True).count() == 2


def test_it_keeps_one_rating_per_person_and_thing(reviewer_account) -> None:
    action = ProposedActionFactory(status="dry_run")
    rating_set(user=reviewer_account, value=1, action=action)
    rating = rating_set(user=reviewer_account, value=-1, comment=" Wrong tool ", action=action)
    assert (Rating.objects.count(), rating.value, rating.comment) == (1, -1, "Wrong tool")
    note = StepFactory(kind="action", tool_name="add_private_note")
    rating_set(user=reviewer_account, value=1, step=note)
    assert Rating.objects.count() == 2


@pytest.mark.parametrize(
    ("value", "targets", "message"),
    [(0, "action", RATING_VALUE_INVALID), (1, "both", RATING_TARGET_INVALID), (1, "none", RATING_TARGET_INVALID)],
)
def test_it_refuses_a_bad_rating(reviewer_account, value, targets, message) -> None:
    action = ProposedActionFactory()
    step = action.run.steps.create(index=0, kind="thought")
    kwargs = (
        {"action": action, "step": step} if targets == "both" else {"action": action} if targets == "action" else {}
    )
    with pytest.raises(ApplicationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rating_set(user=reviewer_account, value=value, **kwargs)
    assert not Rating.objects.exists()


def _rated_recomputed() -> dict[int, bool]:
    """Each run's `rated` as the ratings say it: a rating of one of its proposals or of one of its steps."""
    by_action = Rating.objects.filter(action__run=OuterRef("pk"))
    by_step = Rating.objects.filter(step__run=OuterRef("pk"))
    found = AgentRun.objects.annotate(recomputed=Exists(by_action) | Exists(by_step))
    return dict(found.values_list("pk", "recomputed"))


def test_it_keeps_each_runs_rated_mark_equal_to_its_ratings_after_every_kind_of_rating(reviewer_account) -> None:
    action = ProposedActionFactory(status="dry_run")
    note = StepFactory(kind="action", tool_name="add_private_note")
    untouched = AgentRunFactory()
    marks = lambda: dict(AgentRun.objects.values_list("pk", "rated"))  # noqa: E731
    assert marks() == _rated_recomputed() == {action.run_id: False, note.run_id: False, untouched.pk: False}
    with pytest.raises(ApplicationError):
        rating_set(user=reviewer_account, value=0, action=action)  # refused: nothing rated
    assert marks() == _rated_recomputed()
    rating_set(user=reviewer_account, value=1, action=action)  # a proposal
    assert marks() == _rated_recomputed() == {action.run_id: True, note.run_id: False, untouched.pk: False}
    rating_set(user=reviewer_account, value=-1, comment="Wrong tool", action=action)  # changed
    rating_set(user=UserFactory(groups=["reviewers"]), value=1, action=action)  # a second person
    assert marks() == _rated_recomputed()
    rating_set(user=reviewer_account, value=1, step=note)  # a drafted note
    assert marks() == _rated_recomputed() == {action.run_id: True, note.run_id: True, untouched.pk: False}
