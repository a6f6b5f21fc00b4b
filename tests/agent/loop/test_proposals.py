"""What reaches a reviewer is a valid call, and what the model hears after a reviewer's edit is what ran.
Through the real loop and gate, the model on the Bedrock path, the sandbox company's Admin API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.loop import Outcome
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_approve
from audit.models import AuditEvent
from sandbox.models import Tenant
from tests.bedrock import converse_reply, drive, tool_results, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _triage_run(tenant: str = "acme") -> AgentRun:
    ticket = TicketFactory(tenant_link__tenant_id=tenant, subject="Locked out")
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("unlock_user", {"tenant_id": "acme", "email": ""}, "email"),
        ("unlock_user", {"tenant_id": "acme"}, "email"),
        ("extend_trial", {"tenant_id": "acme", "days": "seven"}, "days"),
        ("extend_trial", {"tenant_id": "acme", "days": 7, "note": "VIP"}, "note"),
        ("reply_to_customer", {"body": ""}, "body"),
    ],
)
def test_it_hands_invalid_arguments_back_to_the_model_and_proposes_nothing(bedrock, tool, args, field) -> None:
    run = _triage_run()
    bedrock.answer(200, converse_reply(tool_use("t1", tool, args)))
    bedrock.answer(
        200, converse_reply({"text": "I could not make a valid call; a human should look."}, stop="end_turn")
    )

    assert drive(run.pk) == Outcome.DONE

    assert not ProposedAction.objects.filter(run=run).exists()
    observed = tool_results(bedrock.requests[1])["t1"]
    assert (observed["ok"], observed["error_type"]) == (False, "invalid_arguments")
    assert field in [e["field"] for e in observed["meta"]["errors"]]
    refusal = AuditEvent.objects.get(verb="gate.refused", object_id=str(run.pk))
    assert refusal.payload["tool"] == tool
    run.refresh_from_db()
    assert run.status == "completed"  # nothing waited for a reviewer


def test_it_tells_the_model_what_a_reviewer_changed_and_what_ran(bedrock_company) -> None:
    run = _triage_run("globex")
    start = Tenant.objects.get(pk="globex").trial_ends_at
    bedrock_company.answer(200, converse_reply(tool_use("t1", "extend_trial", {"tenant_id": "globex", "days": 7})))
    assert drive(run.pk) == Outcome.PAUSED

    action = ProposedAction.objects.get(run=run)
    proposed_action_approve(
        action=action, user=UserFactory(groups=["reviewers"]), args={"tenant_id": "globex", "days": 14}
    )
    bedrock_company.answer(200, converse_reply({"text": "Extended."}, stop="end_turn"))
    assert drive(run.pk) == Outcome.DONE

    assert Tenant.objects.get(pk="globex").trial_ends_at == start + timedelta(days=14)
    observed = tool_results(bedrock_company.requests[1])["t1"]
    assert observed["ok"] is True
    assert "A reviewer edited this call before approving it (days: 7 -> 14)" in observed["message"]
    assert observed["meta"]["executed_args"] == {"tenant_id": "globex", "days": 14}
    assert observed["meta"]["reviewer_edit"]["proposed"]["days"] == 7
