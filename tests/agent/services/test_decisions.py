from __future__ import annotations

import pytest

from agent.models import ProposedAction
from agent.permissions import NOT_A_REVIEWER
from agent.services.actions import (
    ACTION_ALREADY_DECIDED,
    APPROVE_DRY_RUN,
    EDITED_ARGS_INVALID,
    EDITED_ARGS_OTHER_TENANT,
    REJECT_NEEDS_REASON,
    proposed_action_approve,
    proposed_action_reject,
)
from agentconsole.errors import ApplicationError, ConflictError, PermissionDeniedError
from audit.models import AuditEvent
from audit.services import canonical_hash
from tests.factories import AgentRunFactory, ProposedActionFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def action():
    run = AgentRunFactory(ticket=TicketFactory(tenant_link__tenant_id="acme"), status="awaiting_approval")
    return ProposedActionFactory(
        run=run, tool="extend_trial", args={"tenant_id": "acme", "days": 3}, tool_call_id="t1", status="pending"
    )


@pytest.fixture
def reviewer_account():
    return UserFactory(groups=["reviewers"])


def test_it_approves_edited_args_keeping_the_models_originals_and_binding_the_hash(
    action, reviewer_account, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        approved = proposed_action_approve(action=action, user=reviewer_account, args={"tenant_id": "acme", "days": 5})
    assert approved.original_args == {"tenant_id": "acme", "days": 3}
    assert approved.args == {"tenant_id": "acme", "days": 5}
    assert approved.approved_args_hash == canonical_hash({"tenant_id": "acme", "days": 5})
    assert (approved.status, approved.decided_by) == ("approved", reviewer_account)
    assert AuditEvent.objects.get(verb="action.approved").payload["edited"] is True
    assert len(callbacks) == 1  # the run resumes in a worker


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"tenant_id": "acme", "days": "many"}, EDITED_ARGS_INVALID),
        ({"tenant_id": "acme", "days": 31}, EDITED_ARGS_INVALID),
        ({"tenant_id": "globex", "days": 5}, EDITED_ARGS_OTHER_TENANT),
    ],
)
def test_it_refuses_edits_that_do_not_validate(action, reviewer_account, args, message) -> None:
    with pytest.raises(ApplicationError) as caught:
        proposed_action_approve(action=action, user=reviewer_account, args=args)
    assert caught.value.message == message
    action.refresh_from_db()
    assert (action.status, action.args) == ("pending", {"tenant_id": "acme", "days": 3})


def test_it_decides_once(action, reviewer_account) -> None:
    proposed_action_approve(action=action, user=reviewer_account)
    with pytest.raises(
        ConflictError, match=ACTION_ALREADY_DECIDED.format(status="Approved").replace("(", r"\(").replace(")", r"\)")
    ):
        proposed_action_reject(action=action, user=reviewer_account, reason="changed my mind")


def test_it_never_approves_a_dry_run(action, reviewer_account) -> None:
    action.status = "dry_run"
    action.save()
    with pytest.raises(ConflictError, match=APPROVE_DRY_RUN):
        proposed_action_approve(action=action, user=reviewer_account)


def test_it_requires_a_reason_to_reject_and_a_reviewer_to_decide(action, reviewer_account) -> None:
    with pytest.raises(ApplicationError, match=REJECT_NEEDS_REASON):
        proposed_action_reject(action=action, user=reviewer_account, reason="  ")
    with pytest.raises(PermissionDeniedError, match=NOT_A_REVIEWER):
        proposed_action_approve(action=action, user=UserFactory())
    action.refresh_from_db()
    assert action.status == "pending"


def test_it_decides_a_proposal_named_by_its_id_alone(action, reviewer_account, django_capture_on_commit_callbacks):
    # What a reviewer's POST carries: the service locks and loads the proposal itself.
    with django_capture_on_commit_callbacks() as callbacks:
        approved = proposed_action_approve(action=action.pk, user=reviewer_account)
    assert (approved.pk, approved.status, approved.decided_by) == (action.pk, "approved", reviewer_account)
    assert approved.run.ticket.tenant_id == "acme"
    assert AuditEvent.objects.get(verb="action.approved").object_id == str(action.pk)
    assert len(callbacks) == 1  # the run resumes in a worker
    with pytest.raises(ConflictError):
        proposed_action_reject(action=action.pk, user=reviewer_account, reason="changed my mind")
    with pytest.raises(ProposedAction.DoesNotExist):
        proposed_action_approve(action=action.pk + 1000, user=reviewer_account)
