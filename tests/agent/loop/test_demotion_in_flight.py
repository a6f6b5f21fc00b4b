"""Demoting an autonomous workflow holds its runs in flight too: a run that started autonomous does not go on
running pre-approved writes alone after an admin took the workflow's autonomy away."""

from __future__ import annotations

import pytest

from agent.loop import Outcome
from agent.models import ProposedAction
from agent.services.governance import workflow_phase_change
from tests.bedrock import converse_reply, drive, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("phase", ["triage", "shadow"])
def test_it_sends_a_pre_approved_write_of_a_run_in_flight_to_a_reviewer_after_a_demotion(
    bedrock, admin_standin, phase
) -> None:
    workflow = WorkflowFactory(phase="autonomous", preapproved_tools=["extend_trial"])
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="One more week of trial please")
    run = AgentRunFactory(ticket=ticket, workflow=workflow, phase="autonomous")
    workflow_phase_change(workflow=workflow, phase=phase, user=UserFactory(groups=["admins"]), reason="Misbehaves")
    bedrock.answer(200, converse_reply(tool_use("a", "extend_trial", {"tenant_id": "acme", "days": 7})))

    assert drive(run.pk) == Outcome.PAUSED

    assert not admin_standin.requests  # nothing read or sent: the write waits for a human
    assert ProposedAction.objects.get(run=run).status == "pending"
    run.refresh_from_db()
    assert run.phase == "triage"
