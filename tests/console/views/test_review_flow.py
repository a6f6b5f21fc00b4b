"""The console on a real run: the loop proposes a write, a reviewer approves it in the console, the worker's next
turn executes and verifies it, and the ticket page shows the verified real action."""

from __future__ import annotations

import pytest

from agent.loop import Outcome, run_advance
from agent.models import ProposedAction
from tests.bedrock import converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)

HX = {"HX-Request": "true"}


def test_it_reviews_a_real_proposal_end_to_end(bedrock_company, reviewer) -> None:
    standin = bedrock_company
    ticket = TicketFactory(tenant_link__tenant_id="globex", subject="Stale dashboard")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")
    standin.answer(
        200,
        converse_reply(
            {"text": "The cache looks stale; check it with SQL first."},
            tool_use("a", "reset_tenant_cache", {"tenant_id": "globex"}),
        ),
    )
    assert run_advance(run_id=run.pk) == Outcome.PAUSED
    action = ProposedAction.objects.get(run=run)

    page = reviewer.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "every 2s" in page  # awaiting approval is not final: the transcript stays live
    assert "The cache looks stale" in page
    assert f'hx-post="/actions/{action.pk}/approve/"' in page

    assert reviewer.post(f"/actions/{action.pk}/approve/", headers=HX).status_code == 200
    standin.answer(200, converse_reply({"text": "Cache reset and verified."}, stop="end_turn"))
    assert run_advance(run_id=run.pk) == Outcome.DONE
    action.refresh_from_db()
    assert (action.status, action.verification) == ("executed", "passed")

    fragment = reviewer.get(f"/tickets/{ticket.pk}/", headers=HX).content.decode()
    assert "Verification passed" in fragment
    assert "Approved by <strong>reviewer</strong>" in fragment
    assert "Edited by the reviewer" not in fragment
    assert "Approve &amp; run" not in fragment
    assert "every 2s" not in fragment  # the run is final: polling stops
