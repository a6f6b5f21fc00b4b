"""A replay offers the version's own tool set, as the live gate does: a call to a tool outside it is refused as
unknown and is no effect of the version, so a replay never shows a workflow doing what its live runs cannot."""

from __future__ import annotations

import pytest

from agent.replay import replay_execute, replay_start
from tests.bedrock import converse_reply, tool_results, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_refuses_a_tool_outside_the_versions_tool_set(bedrock) -> None:
    workflow = WorkflowFactory(phase="triage", tools=["add_private_note", "search_runbooks"])
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="Dashboards are stale")
    AgentRunFactory(ticket=ticket, workflow=workflow, phase="triage", trigger="ticket_created", status="completed")
    bedrock.answer(200, converse_reply(tool_use("r1", "reply_to_customer", {"body": "All fixed now."})))
    bedrock.answer(200, converse_reply({"text": "Answered."}, stop="end_turn"))

    replay = replay_execute(replay_id=replay_start(workflow=workflow, user=UserFactory(groups=["admins"])).pk)

    offered = {t["toolSpec"]["name"] for t in bedrock.requests[0].json()["toolConfig"]["tools"] if "toolSpec" in t}
    assert {"add_private_note", "search_runbooks"} <= offered and "reply_to_customer" not in offered
    refused = tool_results(bedrock.requests[1])["r1"]
    assert (refused["ok"], refused["error_type"]) == (False, "invalid_arguments")
    assert "no tool named 'reply_to_customer'" in refused["message"]
    assert replay.items.get().effects == []
