from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape

from agent.dashboard import workflow_cards
from agent.forms import REASON_REQUIRED
from agent.models import AgentRun, Rating, Workflow
from agent.permissions import NOT_AN_ADMIN
from agent.selectors.evidence import workflow_evidence
from agent.services.governance import AUTONOMY_CRITERIA_UNMET
from agent.views import AUTONOMY_STOPPED, NOT_A_MEMBER
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/workflows/"
STOP_URL = "/workflows/stop-autonomy/"
HTMX = {"HX-Request": "true"}


def phase_url(workflow: Workflow) -> str:
    return f"/workflows/{workflow.slug}/phase/"


def _reviewed(workflow: Workflow, *, approved: int, edited: int = 0, rejected: int = 0, reason: str = "No") -> None:
    reviewer = UserFactory(username=f"decider-{workflow.slug}")
    run = AgentRunFactory(workflow=workflow)
    for n in range(approved + edited + rejected):
        kind = "approved" if n < approved else "edited" if n < approved + edited else "rejected"
        ProposedActionFactory(
            run=run,
            tool_call_id=f"c{n}",
            decided_by=reviewer,
            decided_at=timezone.now() - timedelta(minutes=n),
            status="rejected" if kind == "rejected" else "executed",
            original_args={"tenant_id": "x"} if kind == "edited" else None,
            decision_reason=f"{reason} {n}" if kind == "rejected" else "",
            verification="passed" if kind != "rejected" else "not_required",
        )


# --- access --------------------------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    workflow = WorkflowFactory()
    for response in (anonymous.get(LIST_URL), anonymous.post(phase_url(workflow)), anonymous.post(STOP_URL)):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/workflows/")


def test_it_shows_an_outsider_nothing(outsider) -> None:
    WorkflowFactory(name="Secret workflow")
    response = outsider.get(LIST_URL)
    assert response.status_code == 403
    assert b"Secret workflow" not in response.content
    assert NOT_A_MEMBER.encode() in response.content


def test_it_refuses_an_outsider_s_posts(outsider) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)
    assert outsider.post(phase_url(workflow), {"phase": "triage", "reason": "x"}).status_code == 403
    assert outsider.post(STOP_URL, {"reason": "x"}).status_code == 403
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.AUTONOMOUS


def test_it_accepts_only_the_right_methods(admin) -> None:
    workflow = WorkflowFactory()
    assert admin.post(LIST_URL).status_code == 405
    assert admin.get(phase_url(workflow)).status_code == 405
    assert admin.get(STOP_URL).status_code == 405


def test_it_shows_reviewers_the_evidence_but_no_forms(reviewer) -> None:
    workflow = WorkflowFactory(
        name="Stale cache", preapproved_tools=["extend_trial"], tool_limits={"extend_trial": {"days": {"max": 14}}}
    )
    _reviewed(workflow, approved=6, edited=2, rejected=2, reason="Not on a Friday")
    response = reviewer.get(LIST_URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Stale cache" in body
    assert "extend_trial: days at most 14 per run" in body
    text = re.sub(r"<[^>]+>", "", body)  # the numbers are links to their tickets; read them as text
    link = f"/tickets/?workflow={workflow.slug}&amp;version=1&amp;evidence="  # the version in force's evidence
    assert f'<dd data-testid="reviewed"><a href="{link}reviewed">10</a></dd>' in body
    assert re.search(r"Approved unedited\s*60% \(6\)", text)
    assert re.search(r"Edited before approval\s*20% \(2\)", text)
    assert "Not on a Friday 9" in body
    assert re.search(r"Verification pass rate\s*100% \(8 passed, 0 failed\)", text)
    assert re.search(r"Thumbs up\s*— \(0 up, 0 down\)", text)
    assert re.search(r"Median time to resolution\s*— \(0 resolved\)", text)
    assert "reviewed proposals, 30 needed" in body
    assert phase_url(workflow) not in body
    assert STOP_URL not in body


def test_it_shows_admins_the_forms(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    body = admin.get(LIST_URL).content.decode()
    assert f'action="{phase_url(workflow)}"' in body
    assert f'hx-post="{phase_url(workflow)}"' in body
    assert f'action="{STOP_URL}"' in body
    assert "hx-confirm=" in body
    assert '<option value="triage">' not in body  # not offered the phase it is already in
    assert '<option value="autonomous">' in body


def test_it_serves_the_list_as_a_fragment_to_htmx(reviewer) -> None:
    WorkflowFactory(name="Billing")
    response = reviewer.get(LIST_URL, headers=HTMX)
    assert response.status_code == 200
    assert b'id="workflows"' in response.content
    assert b"Billing" in response.content
    assert b"<html" not in response.content


# --- evidence ------------------------------------------------------------------------------------------------


def test_it_gathers_the_same_evidence_as_the_single_workflow_selector() -> None:
    first, second = WorkflowFactory(name="A"), WorkflowFactory(name="B")
    _reviewed(first, approved=6, edited=2, rejected=7)
    _reviewed(second, approved=1, rejected=1)
    ProposedActionFactory(run=AgentRunFactory(workflow=first), verification="failed", tool_call_id="f")
    started = timezone.now() - timedelta(minutes=10)
    for minutes in (2, 4, 9):
        run = AgentRunFactory(workflow=first, status="completed", finished_at=started + timedelta(minutes=minutes))
        AgentRun.objects.filter(pk=run.pk).update(created_at=started)
    action = first.runs.order_by("id").first().actions.first()
    Rating.objects.create(user=UserFactory(), action=action, value=1)
    Rating.objects.create(user=UserFactory(), step=StepFactory(run=action.run), value=-1)
    Rating.objects.create(user=UserFactory(), step=StepFactory(run=AgentRunFactory(workflow=second)), value=1)

    cards = {card.workflow.pk: card for card in workflow_cards()}

    for workflow in (first, second):
        assert cards[workflow.pk].evidence == workflow_evidence(workflow=workflow)
    assert len(cards[first.pk].evidence.rejection_reasons) == 5
    assert cards[first.pk].evidence.median_resolution_seconds == 240
    assert cards[first.pk].median_resolution == "4m 00s"
    assert (cards[second.pk].evidence.thumbs_up, cards[second.pk].evidence.thumbs_down) == (1, 0)


def test_it_lists_workflows_in_a_fixed_number_of_queries(admin, django_assert_max_num_queries) -> None:
    for _ in range(15):
        workflow = WorkflowFactory()
        _reviewed(workflow, approved=3, rejected=2)
        AgentRunFactory(workflow=workflow, status="completed", finished_at=timezone.now())
    # session, user, groups, the workflows, their versions in force (two), the five grouped evidence queries of
    # those versions, and their regression suites (three): the same whatever the number of workflows
    with django_assert_max_num_queries(14):
        response = admin.get(LIST_URL)
    assert response.status_code == 200
    assert response.content.count(b'class="card workflow-card"') == 15


# --- promote / demote ----------------------------------------------------------------------------------------


def test_it_refuses_promotion_while_criteria_are_unmet(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    _reviewed(workflow, approved=2)
    response = admin.post(phase_url(workflow), {"phase": "autonomous", "reason": "Looks good"}, headers=HTMX)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not yet ready to run alone" in body
    assert "2 reviewed proposals, 30 needed" in body
    assert 'role="alert"' in body
    assert f'id="workflow-{workflow.slug}"' in body
    assert 'id="workflows"' not in body  # only the card
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.TRIAGE
    assert not AuditEvent.objects.filter(verb="workflow.phase_changed").exists()


def test_it_shows_the_refusal_on_the_full_page_without_htmx(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    response = admin.post(phase_url(workflow), {"phase": "autonomous", "reason": "Looks good"})
    assert response.status_code == 409
    assert AUTONOMY_CRITERIA_UNMET.split(":")[0].encode() in response.content
    assert b"<html" in response.content
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.TRIAGE


def test_it_promotes_with_an_override_and_a_reason(admin, admin_user) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    response = admin.post(
        phase_url(workflow), {"phase": "autonomous", "reason": "Launch week", "override": "on"}, headers=HTMX
    )
    assert response.status_code == 200
    assert b'data-testid="phase">Autonomous<' in response.content
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.AUTONOMOUS
    event = AuditEvent.objects.get(verb="workflow.phase_changed", object_id=str(workflow.pk))
    assert event.actor == admin_user
    assert event.payload["override"] is True
    assert event.payload["reason"] == "Launch week"
    assert event.payload["unmet"]


def test_it_redirects_back_after_a_change_without_htmx(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    response = admin.post(phase_url(workflow), {"phase": "shadow", "reason": "Too many edits"})
    assert response.status_code == 302
    assert response["Location"] == f"/workflows/#workflow-{workflow.slug}"
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.SHADOW
    assert f"{workflow.name} is now in the Shadow phase." in admin.get(response["Location"]).content.decode()


def test_it_requires_a_reason(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    response = admin.post(phase_url(workflow), {"phase": "shadow", "reason": "  "}, headers=HTMX)
    assert response.status_code == 400
    assert REASON_REQUIRED.encode() in response.content
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.TRIAGE


def test_it_refuses_an_unknown_phase(admin) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    response = admin.post(phase_url(workflow), {"phase": "chaos", "reason": "x"}, headers=HTMX)
    assert response.status_code == 400
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.TRIAGE


def test_it_answers_404_for_an_unknown_workflow(admin) -> None:
    assert admin.post("/workflows/nope/phase/", {"phase": "shadow", "reason": "x"}).status_code == 404


def test_it_refuses_a_reviewer_s_promotion(reviewer) -> None:
    workflow = WorkflowFactory(phase=Workflow.Phase.TRIAGE)
    data = {"phase": "autonomous", "reason": "Please", "override": "on"}
    for headers in ({}, HTMX):
        response = reviewer.post(phase_url(workflow), data, headers=headers)
        assert response.status_code == 403
        assert escape(NOT_AN_ADMIN) in response.content.decode()
    assert reviewer.post(phase_url(workflow), {"phase": "autonomous"}).status_code == 403  # not a 400 form error
    workflow.refresh_from_db()
    assert workflow.phase == Workflow.Phase.TRIAGE
    assert not AuditEvent.objects.filter(verb="workflow.phase_changed").exists()


# --- stop autonomy -------------------------------------------------------------------------------------------


def test_it_stops_autonomy_everywhere(admin) -> None:
    autonomous = WorkflowFactory.create_batch(3, phase=Workflow.Phase.AUTONOMOUS)
    shadow = WorkflowFactory(phase=Workflow.Phase.SHADOW)
    response = admin.post(STOP_URL, {"reason": "Incident 42"}, headers=HTMX)
    assert response.status_code == 200
    assert AUTONOMY_STOPPED.format(count=3).encode() in response.content
    assert b'id="workflows"' in response.content
    assert set(Workflow.objects.values_list("phase", flat=True).exclude(pk=shadow.pk)) == {"triage"}
    shadow.refresh_from_db()
    assert shadow.phase == Workflow.Phase.SHADOW
    assert AuditEvent.objects.filter(verb="workflow.phase_changed", payload__stop_autonomy=True).count() == len(
        autonomous
    )


def test_it_redirects_back_after_stopping_without_htmx(admin) -> None:
    WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)
    response = admin.post(STOP_URL, {"reason": "Incident 42"})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    assert not Workflow.objects.filter(phase=Workflow.Phase.AUTONOMOUS).exists()


def test_it_requires_a_reason_to_stop_autonomy(admin) -> None:
    WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)
    response = admin.post(STOP_URL, {"reason": ""}, headers=HTMX)
    assert response.status_code == 400
    assert REASON_REQUIRED.encode() in response.content
    assert Workflow.objects.filter(phase=Workflow.Phase.AUTONOMOUS).count() == 1


def test_it_refuses_a_reviewer_s_stop(reviewer) -> None:
    WorkflowFactory(phase=Workflow.Phase.AUTONOMOUS)
    response = reviewer.post(STOP_URL, {"reason": "Panic"}, headers=HTMX)
    assert response.status_code == 403
    assert escape(NOT_AN_ADMIN) in response.content.decode()
    assert reviewer.post(STOP_URL, {}).status_code == 403
    assert Workflow.objects.filter(phase=Workflow.Phase.AUTONOMOUS).count() == 1
