from __future__ import annotations

import pytest
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Rating, Workflow
from agent.permissions import NOT_AN_ADMIN
from agent.selectors.evidence import workflow_evidence, workflow_evidence_many
from agent.services.governance import AUTONOMY_CRITERIA_UNMET, PHASE_CHANGE_NEEDS_REASON, PHASE_UNCHANGED
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def _post(client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def _history(workflow: Workflow, reviewer_user) -> None:
    """Some of everything the evidence counts, so a wrong grouping shows."""
    run = AgentRunFactory(workflow=workflow, status=AgentRun.Status.COMPLETED, finished_at=timezone.now())
    decided = {"decided_by": reviewer_user, "decided_at": timezone.now()}
    ProposedActionFactory(run=run, status="approved", verification="passed", **decided)
    ProposedActionFactory(run=run, status="approved", original_args={"tenant_id": "x"}, **decided)
    rejected = ProposedActionFactory(run=run, status="rejected", decision_reason="Wrong tenant.", **decided)
    ProposedActionFactory(run=run, status="executed", verification="failed")
    Rating.objects.create(user=reviewer_user, action=rejected, value=-1)
    Rating.objects.create(user=reviewer_user, step=StepFactory(run=run), value=1)


def test_it_lists_workflows_with_their_settings_and_evidence(reviewer, reviewer_user) -> None:
    workflow = WorkflowFactory(
        slug="trials", preapproved_tools=["extend_trial"], tool_limits={"extend_trial": {"days": {"max": 14}}}
    )
    _history(workflow, reviewer_user)

    response = reviewer.get("/api/workflows")

    assert response.status_code == 200
    [item] = response.json()["items"]
    assert (item["slug"], item["phase"], item["preapproved_tools"], item["tool_limits"]) == (
        "trials",
        "triage",
        ["extend_trial"],
        {"extend_trial": {"days": {"max": 14}}},
    )
    evidence = item["evidence"]
    assert (evidence["reviewed"], evidence["approved_unedited"], evidence["approved_edited"], evidence["rejected"]) == (
        3,
        1,
        1,
        1,
    )
    assert evidence["unedited_approval_rate"] == pytest.approx(1 / 3)
    assert evidence["verification_pass_rate"] == 0.5
    assert (evidence["thumbs_up"], evidence["thumbs_down"], evidence["thumbs_up_ratio"]) == (1, 1, 0.5)
    assert evidence["rejection_reasons"] == ["Wrong tenant."]
    assert evidence["resolved_runs"] == 1
    assert any("reviewed proposals" in criterion for criterion in item["unmet_autonomy_criteria"])
    assert any("failed verifications" in criterion for criterion in item["unmet_autonomy_criteria"])


def test_it_computes_the_same_evidence_in_bulk_as_the_selector(reviewer_user) -> None:
    first, second = WorkflowFactory(), WorkflowFactory()
    _history(first, reviewer_user)
    _history(second, reviewer_user)
    _history(second, reviewer_user)

    bulk = workflow_evidence_many(workflow_ids=[first.pk, second.pk, WorkflowFactory().pk])

    for workflow in Workflow.objects.all():
        assert bulk[workflow.pk] == workflow_evidence(workflow=workflow)
    assert bulk[second.pk].reviewed == 6


def test_it_refuses_promotion_with_unmet_criteria_listing_them(world, admin) -> None:
    response = _post(admin, f"/api/workflows/{world.workflow.slug}/phase", {"phase": "autonomous", "reason": "Ready."})

    assert response.status_code == 409
    body = response.json()
    assert body["unmet"] and all(isinstance(criterion, str) for criterion in body["unmet"])
    assert body["detail"] == AUTONOMY_CRITERIA_UNMET.format(unmet="; ".join(body["unmet"]))
    world.workflow.refresh_from_db()
    assert world.workflow.phase == Workflow.Phase.TRIAGE


def test_it_promotes_on_an_override_with_a_reason_and_audits_it(world, admin, admin_user) -> None:
    response = _post(
        admin,
        f"/api/workflows/{world.workflow.slug}/phase",
        {"phase": "autonomous", "reason": "Vendor outage: we accept the risk.", "override": True},
    )

    assert response.status_code == 200
    assert response.json()["phase"] == "autonomous"
    world.workflow.refresh_from_db()
    assert world.workflow.phase == Workflow.Phase.AUTONOMOUS
    event = AuditEvent.objects.get(verb="workflow.phase_changed", object_id=str(world.workflow.pk))
    assert event.actor == admin_user
    assert event.payload["override"] is True
    assert event.payload["unmet"] == response.json()["unmet_autonomy_criteria"]
    assert event.payload["reason"] == "Vendor outage: we accept the risk."


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"phase": "shadow", "reason": " "}, 400, PHASE_CHANGE_NEEDS_REASON),
        ({"phase": "triage", "reason": "Again."}, 409, PHASE_UNCHANGED.format(phase="triage")),
        ({"phase": "lunar", "reason": "Why not."}, 422, None),
        ({"reason": "No phase."}, 422, None),
    ],
)
def test_it_refuses_bad_phase_changes(world, admin, body, status, detail) -> None:
    response = _post(admin, f"/api/workflows/{world.workflow.slug}/phase", body)

    assert response.status_code == status
    assert response.json()["detail"] == detail if detail else response.json()["detail"]
    assert not AuditEvent.objects.filter(verb="workflow.phase_changed").exists()


def test_it_refuses_phase_changes_to_reviewers_with_the_services_message(world, reviewer_token) -> None:
    response = _post(reviewer_token, f"/api/workflows/{world.workflow.slug}/phase", {"phase": "shadow", "reason": "x"})

    assert response.status_code == 403
    assert response.json() == {"detail": NOT_AN_ADMIN}


def test_it_stops_autonomy_everywhere(world, admin_token, admin_user) -> None:
    autonomous = WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)
    in_flight = AgentRunFactory(workflow=autonomous, phase=Workflow.Phase.AUTONOMOUS, status="running")

    response = _post(admin_token, "/api/autonomy/stop", {"reason": "Bad deploy."})

    assert response.status_code == 200
    assert response.json() == {"stopped_workflows": 1}
    autonomous.refresh_from_db()
    in_flight.refresh_from_db()
    assert (autonomous.phase, in_flight.phase) == (Workflow.Phase.TRIAGE, Workflow.Phase.TRIAGE)
    event = AuditEvent.objects.get(verb="workflow.phase_changed", object_id=str(autonomous.pk))
    assert (event.actor, event.payload["stop_autonomy"], event.payload["reason"]) == (admin_user, True, "Bad deploy.")


def test_it_refuses_to_stop_autonomy_without_a_reason(admin) -> None:
    autonomous = WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)

    response = _post(admin, "/api/autonomy/stop", {"reason": ""})

    assert response.status_code == 400
    assert response.json() == {"detail": PHASE_CHANGE_NEEDS_REASON}
    autonomous.refresh_from_db()
    assert autonomous.phase == Workflow.Phase.AUTONOMOUS


def test_it_keeps_pending_actions_out_of_the_evidence(reviewer) -> None:
    workflow = WorkflowFactory()
    ProposedActionFactory(run=AgentRunFactory(workflow=workflow), status=ProposedAction.Status.PENDING)

    item = reviewer.get("/api/workflows").json()["items"][0]

    assert item["evidence"]["reviewed"] == 0
