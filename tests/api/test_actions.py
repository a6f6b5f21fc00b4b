from __future__ import annotations

import pytest

from agent.models import ProposedAction, Rating
from agent.services.actions import ACTION_ALREADY_DECIDED, APPROVE_DRY_RUN, EDITED_ARGS_INVALID, REJECT_NEEDS_REASON
from audit.models import AuditEvent
from audit.services import canonical_hash
from tests.factories import ProposedActionFactory
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db


def _post(client, url: str, body: dict | None = None):
    return client.post(url, body if body is not None else {}, content_type="application/json")


@pytest.fixture
def trial(world) -> ProposedAction:
    return ProposedActionFactory(
        run=world.run, tool="extend_trial", args={"tenant_id": "acme", "days": 3}, status=ProposedAction.Status.PENDING
    )


def test_it_approves_once_and_refuses_the_second_approval_with_409(
    world, reviewer_token, broker, django_capture_on_commit_callbacks
) -> None:
    url = f"/api/actions/{world.action.pk}/approve"
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(reviewer_token, url)
        second = _post(reviewer_token, url)

    assert first.status_code == 200
    assert first.json()["status"] == "approved"
    assert first.json()["decided_by"] == "reviewer"
    assert second.status_code == 409
    assert second.json() == {"detail": ACTION_ALREADY_DECIDED.format(status="Approved")}
    assert AuditEvent.objects.filter(verb="action.approved", object_id=str(world.action.pk)).count() == 1
    # The run resumes in a worker exactly once: one advance is queued, so the write executes once.
    world.run.refresh_from_db()
    messages = queued_task_messages(broker)
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [
        ("agent.tasks.agent_run_advance_task", f"({world.run.pk}, '{world.run.dispatch_token}')")
    ]


def test_it_approves_edited_args_keeping_the_models_originals(trial, reviewer) -> None:
    response = _post(reviewer, f"/api/actions/{trial.pk}/approve", {"args": {"tenant_id": "acme", "days": 5}})

    assert response.status_code == 200
    assert response.json()["args"] == {"tenant_id": "acme", "days": 5}
    assert response.json()["original_args"] == {"tenant_id": "acme", "days": 3}
    trial.refresh_from_db()
    assert trial.approved_args_hash == canonical_hash({"tenant_id": "acme", "days": 5})


def test_it_refuses_edited_args_the_tool_rejects_with_400(trial, reviewer) -> None:
    response = _post(reviewer, f"/api/actions/{trial.pk}/approve", {"args": {"tenant_id": "acme", "days": 99}})

    assert response.status_code == 400
    assert response.json()["detail"] == EDITED_ARGS_INVALID
    trial.refresh_from_db()
    assert trial.status == ProposedAction.Status.PENDING


def test_it_refuses_to_approve_a_dry_run_with_409(world, reviewer) -> None:
    dry = ProposedActionFactory(run=world.run, status=ProposedAction.Status.DRY_RUN)

    response = _post(reviewer, f"/api/actions/{dry.pk}/approve")

    assert response.status_code == 409
    assert response.json() == {"detail": APPROVE_DRY_RUN}


def test_it_stores_the_rejection_reason(world, reviewer) -> None:
    response = _post(reviewer, f"/api/actions/{world.action.pk}/reject", {"reason": "  Wrong tenant.  "})

    assert response.status_code == 200
    assert response.json()["decision_reason"] == "Wrong tenant."
    world.action.refresh_from_db()
    assert (world.action.status, world.action.decision_reason) == (ProposedAction.Status.REJECTED, "Wrong tenant.")


@pytest.mark.parametrize(
    ("body", "status"),
    [({"reason": "   "}, 400), ({}, 422), ({"reason": ["a"]}, 422)],
)
def test_it_refuses_a_rejection_without_a_reason(world, reviewer, body, status) -> None:
    response = _post(reviewer, f"/api/actions/{world.action.pk}/reject", body)

    assert response.status_code == status
    if status == 400:
        assert response.json() == {"detail": REJECT_NEEDS_REASON}
    assert response.json()["detail"]
    world.action.refresh_from_db()
    assert world.action.status == ProposedAction.Status.PENDING


def test_it_rates_an_action_up_then_changes_it_down(world, reviewer, reviewer_user) -> None:
    url = f"/api/actions/{world.action.pk}/rate"
    up = _post(reviewer, url, {"value": 1})
    down = _post(reviewer, url, {"value": -1, "comment": "Should have read the logs first."})

    assert (up.status_code, down.status_code) == (200, 200)
    assert up.json()["id"] == down.json()["id"]
    rating = Rating.objects.get()
    assert (rating.user, rating.action, rating.value, rating.comment) == (
        reviewer_user,
        world.action,
        -1,
        "Should have read the logs first.",
    )


def test_it_rates_a_step(world, admin) -> None:
    response = _post(admin, f"/api/steps/{world.step.pk}/rate", {"value": 1})

    assert response.status_code == 200
    assert response.json()["step_id"] == world.step.pk
    assert Rating.objects.get().step == world.step


@pytest.mark.parametrize("value", [0, 2, "up", None])
def test_it_refuses_a_rating_that_is_not_thumbs_up_or_down(world, reviewer, value) -> None:
    response = _post(reviewer, f"/api/actions/{world.action.pk}/rate", {"value": value})

    assert response.status_code == 422
    assert response.json()["detail"]
    assert not Rating.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/actions/999999/approve",
        "/api/actions/999999/reject",
        "/api/actions/999999/rate",
        "/api/steps/999999/rate",
        "/api/workflows/no-such-workflow/phase",
    ],
)
def test_it_answers_404_with_a_message_for_unknown_targets(world, admin, url) -> None:
    body = {"reason": "x", "value": 1, "phase": "shadow"}

    response = _post(admin, url, body)

    assert response.status_code == 404
    assert response.json()["detail"].startswith("No ")


def test_it_answers_json_4xx_to_wrong_types_and_bodies(world, reviewer) -> None:
    wrong_id = reviewer.get("/api/actions/abc")
    not_json = reviewer.post(
        f"/api/actions/{world.action.pk}/approve", data="{not json", content_type="application/json"
    )
    args_not_object = _post(reviewer, f"/api/actions/{world.action.pk}/approve", {"args": [1, 2]})

    assert wrong_id.status_code == 422
    assert not_json.status_code == 400
    assert args_not_object.status_code == 422
    for response in (wrong_id, not_json, args_not_object):
        assert response.json()["detail"]
    world.action.refresh_from_db()
    assert world.action.status == ProposedAction.Status.PENDING
