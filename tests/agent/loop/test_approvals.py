from __future__ import annotations

import json

import pytest

from agent.loop import Outcome, run_advance
from agent.models import ProposedAction
from agent.services.actions import proposed_action_approve, proposed_action_reject
from sandbox.models import Tenant
from tests.bedrock import converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_decides_several_proposals_of_one_turn_one_by_one(bedrock_company) -> None:
    standin = bedrock_company
    ticket = TicketFactory(tenant_link__tenant_id="globex", subject="Stale data and more trial time")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")
    globex = Tenant.objects.get(pk="globex")
    reviewer = UserFactory(groups=["reviewers"])
    standin.answer(
        200,
        converse_reply(
            tool_use("a", "reset_tenant_cache", {"tenant_id": "globex"}),
            tool_use("b", "extend_trial", {"tenant_id": "globex", "days": 10}),
        ),
    )
    assert run_advance(run_id=run.pk) == Outcome.PAUSED
    reset, extend = ProposedAction.objects.filter(run=run).order_by("id")

    proposed_action_approve(action=reset, user=reviewer)
    assert run_advance(run_id=run.pk) == Outcome.PAUSED  # the reset ran; the extension still waits
    reset.refresh_from_db()
    extend.refresh_from_db()
    assert (reset.status, reset.verification, extend.status) == ("executed", "passed", "pending")
    assert Tenant.objects.get(pk="globex").cache_version == globex.cache_version + 1
    assert len(standin.requests) == 1  # the model waits for every decision of its turn

    proposed_action_reject(action=extend, user=reviewer, reason="Ten days is too many")
    standin.answer(200, converse_reply({"text": "Cache reset; trial left as is."}, stop="end_turn"))
    assert run_advance(run_id=run.pk) == Outcome.DONE

    content = standin.requests[1].json()["messages"][-1]["content"]
    results = [block["toolResult"] for block in content if "toolResult" in block]
    observations = {r["toolUseId"]: json.loads(r["content"][0]["text"]) for r in results}
    assert observations["a"]["ok"] is True and observations["a"]["meta"]["verified"]["verified"] is True
    assert "Ten days is too many" in observations["b"]["message"]
    assert Tenant.objects.get(pk="globex").trial_ends_at == globex.trial_ends_at
