from __future__ import annotations

import json

import pytest
from django.utils.html import escape

from agent.models import AgentRun, ProposedAction, Rating, Step
from agent.services.actions import ACTION_ALREADY_DECIDED, EDITED_ARGS_INVALID
from audit.models import AuditEvent
from console.forms import ARGS_NOT_OBJECT
from tests.factories import ProposedActionFactory, StepFactory
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


@pytest.fixture
def action() -> ProposedAction:
    step = StepFactory(
        kind=Step.Kind.ACTION,
        tool_name="extend_trial",
        tool_input={"tenant_id": "acme", "days": 30},
        run__status=AgentRun.Status.AWAITING_APPROVAL,
        run__ticket__tenant_link__tenant_id="acme",
    )
    return ProposedActionFactory(run=step.run, step=step, tool="extend_trial", args={"tenant_id": "acme", "days": 30})


@pytest.fixture
def draft() -> Step:
    return StepFactory(kind=Step.Kind.ACTION, tool_name="reply_to_customer", tool_input={"body": "Hello"})


def _posts(action: ProposedAction, draft: Step) -> list[tuple[str, dict]]:
    return [
        (f"/actions/{action.pk}/approve/", {}),
        (f"/actions/{action.pk}/reject/", {"reason": "No"}),
        (f"/actions/{action.pk}/rate/", {"value": "1"}),
        (f"/steps/{draft.pk}/rate/", {"value": "1"}),
    ]


def test_it_sends_anonymous_users_to_the_login_page(anonymous, action, draft) -> None:
    responses = [anonymous.post(url, data) for url, data in _posts(action, draft)]
    responses.append(anonymous.get(f"/actions/{action.pk}/"))
    for response in responses:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.PENDING


def test_it_lets_an_outsider_decide_nothing(outsider, action, draft) -> None:
    for url, data in _posts(action, draft):
        assert outsider.post(url, data, headers=HX).status_code == 403, url
    assert outsider.get(f"/actions/{action.pk}/").status_code == 403
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.PENDING
    assert not Rating.objects.exists()


def test_it_refuses_the_wrong_method(reviewer, action, draft) -> None:
    for url, _ in _posts(action, draft):
        assert reviewer.get(url).status_code == 405, url
    assert reviewer.post(f"/actions/{action.pk}/").status_code == 405


def test_it_serves_the_card_as_a_page_and_as_a_fragment(reviewer, action) -> None:
    page = reviewer.get(f"/actions/{action.pk}/").content.decode()
    fragment = reviewer.get(f"/actions/{action.pk}/", headers=HX).content.decode()
    assert "<html" in page and f'id="action-{action.pk}"' in page
    assert "<html" not in fragment and fragment.strip().startswith(f'<article id="action-{action.pk}"')


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_approves_and_enqueues_the_run_on_commit(
    request, client_name, action, broker, django_capture_on_commit_callbacks
) -> None:
    client = request.getfixturevalue(client_name)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(f"/actions/{action.pk}/approve/", headers=HX)
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "Approved by" in response.content.decode()
    assert "Approve &amp; run" not in response.content.decode()
    assert "Edited by the reviewer" not in response.content.decode()
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.APPROVED
    assert action.decided_by.username == client_name
    assert len(callbacks) == 1
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.agent_run_advance_task"]


def test_it_redirects_back_to_the_ticket_without_javascript(
    reviewer, action, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        response = reviewer.post(f"/actions/{action.pk}/approve/")
    assert response.status_code == 302
    assert response["Location"] == f"/tickets/{action.run.ticket_id}/#action-{action.pk}"


def test_it_approves_once_when_approved_twice(reviewer, admin, action, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = reviewer.post(f"/actions/{action.pk}/approve/", headers=HX)
        second = admin.post(f"/actions/{action.pk}/approve/", headers=HX)
    assert first.status_code == 200
    assert second.status_code == 409
    assert ACTION_ALREADY_DECIDED.format(status="Approved") in second.content.decode()
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(verb="action.approved").count() == 1
    action.refresh_from_db()
    assert action.decided_by.username == "reviewer"


def test_it_approves_edited_args_and_shows_the_diff(reviewer, action, django_capture_on_commit_callbacks) -> None:
    edited = json.dumps({"tenant_id": "acme", "days": 7})
    with django_capture_on_commit_callbacks(execute=False):
        response = reviewer.post(f"/actions/{action.pk}/approve/", {"args": edited}, headers=HX)
    assert response.status_code == 200
    action.refresh_from_db()
    assert action.args == {"tenant_id": "acme", "days": 7}
    assert action.original_args == {"tenant_id": "acme", "days": 30}
    body = response.content.decode()
    assert "Edited by the reviewer before approval" in body
    assert '<td class="old">30</td><td class="new">7</td>' in body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('{"tenant_id": "acme", "days": ', "not valid JSON"),
        ('["acme"]', ARGS_NOT_OBJECT),
        ('{"tenant_id": "acme", "days": 99}', EDITED_ARGS_INVALID),
        # what json.loads alone raised as a 500 (RecursionError, ValueError) or PostgreSQL's jsonb refuses (NUL)
        ("[" * 5000, "nested deeper than"),
        ('{"tenant_id": "acme", "days": ' + "9" * 5000 + "}", "(days): it is a number out of range"),
        ('{"tenant_id": "ac\\u0000me", "days": 7}', "(tenant_id): it contains a NUL character"),
    ],
)
def test_it_refuses_invalid_edited_args_in_the_card(reviewer, action, args, message) -> None:
    response = reviewer.post(f"/actions/{action.pk}/approve/", {"args": args}, headers=HX)
    assert response.status_code == 400
    body = response.content.decode()
    assert escape(message) in body
    assert "<html" not in body
    assert '<details class="edit" open>' in body  # the edit form stays open with what was typed
    assert escape(args) in body
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.PENDING
    assert action.args == {"tenant_id": "acme", "days": 30}
    assert action.original_args is None


def test_it_shows_schema_errors_by_field(reviewer, action) -> None:
    response = reviewer.post(
        f"/actions/{action.pk}/approve/", {"args": '{"tenant_id": "acme", "days": 99}'}, headers=HX
    )
    assert "<code>days</code>" in response.content.decode()


def test_it_shows_a_refusal_as_a_page_without_javascript(reviewer, action) -> None:
    response = reviewer.post(f"/actions/{action.pk}/approve/", {"args": "nope"})
    assert response.status_code == 400
    assert "<html" in response.content.decode()
    assert "not valid JSON" in response.content.decode()


def test_it_never_approves_a_dry_run(reviewer) -> None:
    dry = ProposedActionFactory(status=ProposedAction.Status.DRY_RUN)
    page = reviewer.get(f"/actions/{dry.pk}/", headers=HX).content.decode()
    assert "Dry run — never executed" in page
    assert "approve/" not in page
    response = reviewer.post(f"/actions/{dry.pk}/approve/", headers=HX)
    assert response.status_code == 409
    dry.refresh_from_db()
    assert dry.status == ProposedAction.Status.DRY_RUN


def test_it_rejects_with_a_reason(reviewer, action, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = reviewer.post(f"/actions/{action.pk}/reject/", {"reason": "Too many days"}, headers=HX)
    assert response.status_code == 200
    assert "Too many days" in response.content.decode()
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.REJECTED
    assert action.decision_reason == "Too many days"
    assert len(callbacks) == 1


@pytest.mark.parametrize("reason", ["", "   "])
def test_it_needs_a_reason_to_reject(reviewer, action, reason) -> None:
    response = reviewer.post(f"/actions/{action.pk}/reject/", {"reason": reason}, headers=HX)
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    action.refresh_from_db()
    assert action.status == ProposedAction.Status.PENDING


def test_it_rates_an_action_and_changes_the_rating(reviewer, reviewer_user, action) -> None:
    response = reviewer.post(f"/actions/{action.pk}/rate/", {"value": "1", "comment": "Right call"}, headers=HX)
    assert response.status_code == 200
    assert "You rated it thumbs up." in response.content.decode()
    reviewer.post(f"/actions/{action.pk}/rate/", {"value": "-1"}, headers=HX)
    rating = Rating.objects.get(action=action)
    assert (rating.user, rating.value, rating.comment) == (reviewer_user, -1, "")


def test_it_rates_a_dry_run(reviewer) -> None:
    dry = ProposedActionFactory(status=ProposedAction.Status.DRY_RUN)
    response = reviewer.post(f"/actions/{dry.pk}/rate/", {"value": "-1"})
    assert response.status_code == 302
    assert Rating.objects.get(action=dry).value == -1


def test_it_refuses_a_rating_that_is_not_a_thumb(reviewer, action) -> None:
    response = reviewer.post(f"/actions/{action.pk}/rate/", {"value": "5"}, headers=HX)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Rating.objects.exists()


def test_it_rates_a_drafted_reply(reviewer, draft) -> None:
    response = reviewer.post(f"/steps/{draft.pk}/rate/", {"value": "1", "comment": "Kind"}, headers=HX)
    assert response.status_code == 200
    assert response.content.decode().strip().startswith(f'<div id="step-{draft.pk}"')
    assert "You rated it thumbs up." in response.content.decode()
    assert Rating.objects.get(step=draft).comment == "Kind"
    response = reviewer.post(f"/steps/{draft.pk}/rate/", {"value": "-1"})
    assert response["Location"] == f"/tickets/{draft.run.ticket_id}/#step-{draft.pk}"


def test_it_rates_only_drafted_notes_and_replies(reviewer) -> None:
    thought = StepFactory(kind=Step.Kind.THOUGHT)
    assert reviewer.post(f"/steps/{thought.pk}/rate/", {"value": "1"}, headers=HX).status_code == 404
    assert not Rating.objects.exists()


def test_it_warns_that_a_call_of_unknown_outcome_must_be_checked(reviewer, action) -> None:
    ProposedAction.objects.filter(pk=action.pk).update(status=ProposedAction.Status.UNCERTAIN)
    body = reviewer.get(f"/actions/{action.pk}/", headers=HX).content.decode()
    assert "Outcome unknown" in body and 'data-testid="outcome-unknown"' in body
    assert "Approve" not in body
