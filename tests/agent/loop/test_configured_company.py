"""What the model is offered comes from configuration: the company's contracts make its tools, a workflow's tool
list narrows them, and a changed contract file changes what the next model turn sees. Through the real loop and the
Bedrock path (HTTP Converse stand-in) against Northwind Seats, a company other than the sandbox."""

from __future__ import annotations

import pytest

from agent.company.services import contracts_import
from agent.loop import Outcome
from agent.models import ProposedAction
from tests.bedrock import converse_reply, drive, tool_results, tool_use
from tests.companies.northwind import CONTRACTS
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _offered(request) -> dict[str, dict]:
    return {
        tool["toolSpec"]["name"]: tool["toolSpec"]
        for tool in request.json()["toolConfig"]["tools"]
        if "toolSpec" in tool
    }


def _run(phase: str = "autonomous", **workflow: object):
    ticket = TicketFactory(tenant_link__tenant_id="nw-1042", subject="We hit our seat cap", tags=["seat_cap"])
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase=phase, **workflow), phase=phase)


def test_it_offers_the_configured_companys_tools_and_a_changed_file_changes_them(bedrock, northwind) -> None:
    run = _run(preapproved_tools=["raise_seat_cap"])
    bedrock.answer(200, converse_reply(tool_use("t1", "raise_seat_cap", {"tenant_id": "nw-1042", "extra_seats": 2})))
    bedrock.answer(200, converse_reply({"text": "Raised."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    offered = _offered(bedrock.requests[0])
    assert {"raise_seat_cap", "get_usage", "run_sql", "search_logs"} <= set(offered)
    assert not {"reset_tenant_cache", "extend_trial", "get_billing_status"} & set(offered)
    assert offered["raise_seat_cap"]["inputSchema"]["json"]["properties"]["extra_seats"]["maximum"] == 50
    result = tool_results(bedrock.requests[1])["t1"]
    assert result["ok"] is True and result["data"]["seat_cap"] == 22
    action = ProposedAction.objects.get(run=run, tool="raise_seat_cap")
    assert (action.status, action.verification) == ("executed", "passed")

    contracts_import(
        text=CONTRACTS.read_text().replace("(1 to 50)", "(1 to 20)").replace("max_per_call: 50", "max_per_call: 20"),
        source="edited.yaml",
    )
    second = _run()
    bedrock.answer(200, converse_reply({"text": "Nothing to do."}, stop="end_turn"))
    drive(second.pk)

    changed = _offered(bedrock.requests[-1])["raise_seat_cap"]
    assert "(1 to 20)" in changed["description"]
    assert changed["inputSchema"]["json"]["properties"]["extra_seats"]["maximum"] == 20


@pytest.mark.parametrize("phase", ["triage", "autonomous"])
def test_it_offers_a_workflow_only_its_own_tools_and_refuses_another(bedrock, northwind, phase) -> None:
    # raise_seat_cap is pre-approved but not in the workflow's tool set; get_usage is a read, which would run at once.
    run = _run(tools=["reply_to_customer", "solve_ticket"], phase=phase, preapproved_tools=["raise_seat_cap"])
    bedrock.answer(
        200,
        converse_reply(
            tool_use("t1", "raise_seat_cap", {"tenant_id": "nw-1042", "extra_seats": 2}),
            tool_use("t2", "get_usage", {"tenant_id": "nw-1042"}),
        ),
    )
    bedrock.answer(200, converse_reply({"text": "I cannot."}, stop="end_turn"))

    drive(run.pk)

    assert set(_offered(bedrock.requests[0])) == {"reply_to_customer", "solve_ticket", "escalate_to_human"}
    told = tool_results(bedrock.requests[1])  # what the model reads back, so it can adjust
    for call_id, name in (("t1", "raise_seat_cap"), ("t2", "get_usage")):
        assert told[call_id]["ok"] is False
        assert repr(name) in told[call_id]["message"]
        assert "Available tools: reply_to_customer, solve_ticket" in told[call_id]["message"]
    assert not ProposedAction.objects.filter(run=run).exists()  # nothing run, and no reviewer asked
    assert northwind.accounts["nw-1042"].seat_cap == 20
    assert northwind.requests == []
