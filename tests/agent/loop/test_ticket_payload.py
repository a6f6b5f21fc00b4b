"""A worker's turn never reads the ticket's raw_payload (the stored Zendesk event, which can be many times the rest
of the row): its claim leaves it out, and nothing on the way reads it (a deferred field read would show up as a query
of its own)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_approve
from tests.bedrock import converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

EVENT = {"ticket": {"id": 35436, "description": "The numbers stopped updating. " * 200}, "type": "ticket.created"}


def _run(**workflow: object) -> AgentRun:
    ticket = TicketFactory(source="local", tenant_link__tenant_id="acme", requester_email="ops@acme.example")
    Ticket.objects.filter(pk=ticket.pk).update(raw_payload=EVENT)
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage", **workflow), phase="triage")


def _reading_the_payload(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if "raw_payload" in query["sql"]]


def test_it_never_reads_the_raw_payload_in_an_episode_with_an_approval_and_a_reply(settings) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _run(playbook=[{"tool": "reply_to_customer", "args": {"body": "Done for {requester_email}."}}])

    with CaptureQueriesContext(connection) as first:
        assert run_advance(run_id=run.pk) == Outcome.PAUSED
    proposed_action_approve(action=ProposedAction.objects.get(run=run), user=UserFactory(groups=["reviewers"]))
    with CaptureQueriesContext(connection) as second:
        assert run_advance(run_id=run.pk) == Outcome.DONE

    assert first.captured_queries and second.captured_queries
    assert _reading_the_payload(first) == _reading_the_payload(second) == []
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    assert run.ticket.comments.filter(public=True, body="Done for ops@acme.example.").exists()
    assert Ticket.objects.get(pk=run.ticket_id).raw_payload == EVENT  # the turns' writes left it as it was


def test_it_never_reads_the_raw_payload_in_the_turns_of_a_bedrock_run(bedrock) -> None:
    run = _run()
    bedrock.answer(200, converse_reply({"text": "Runbooks."}, tool_use("r1", "search_runbooks", {"query": "stale"})))
    bedrock.answer(200, converse_reply({"text": "Routing to humans."}, stop="end_turn"))

    with CaptureQueriesContext(connection) as captured:
        assert run_advance(run_id=run.pk) == Outcome.CONTINUE
        assert run_advance(run_id=run.pk) == Outcome.DONE

    assert len(bedrock.requests) == 2
    assert _reading_the_payload(captured) == []
    assert Ticket.objects.get(pk=run.ticket_id).raw_payload == EVENT
