"""A call that started is never repeated blindly: a comment whose sending was interrupted is looked up on the
helpdesk, and an approval that lands while the turn is still being dispatched still resumes the run."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection

from agent.calls import tool_context
from agent.catalogue import get_tool
from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction, Step
from agent.services.actions import proposed_action_approve, proposed_action_create, proposed_action_start_execution
from sandbox.models import FaultSwitch, Tenant
from tests.bedrock import converse_reply, drive, tool_results, tool_use
from tests.factories import AgentRunFactory, StepFactory, TicketFactory, UserFactory, WorkflowFactory
from tickets.snapshot import without_marker

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "Hello, your dashboards show current data again."


def _interrupted_reply(run: AgentRun) -> ProposedAction:
    """What a worker killed after posting a reply and before recording it leaves: the transcript's action step,
    the action with its start time, and the comment on the ticket — made by the real tool."""
    step = StepFactory(run=run, index=0, turn=1, kind=Step.Kind.ACTION, tool_name="reply_to_customer",
                       tool_call_id="r1", tool_input={"body": REPLY}, content="")  # fmt: skip
    AgentRun.objects.filter(pk=run.pk).update(turns=1, status="running")
    run.refresh_from_db()
    tool = get_tool("reply_to_customer")
    action = proposed_action_create(
        run=run, step=step, tool=tool, args={"body": REPLY}, rationale="", status="approved", reason="autonomous"
    )
    action = proposed_action_start_execution(action=action)
    assert tool.invoke({"body": REPLY}, tool_context(run, action=action)).ok
    return action


def test_it_finds_a_reply_posted_before_a_crash_instead_of_sending_it_again(bedrock) -> None:
    ticket = TicketFactory(tenant_link__tenant_id="acme", source="local")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="autonomous"), phase="autonomous")
    action = _interrupted_reply(run)
    bedrock.answer(200, converse_reply({"text": "Told the customer."}, stop="end_turn"))

    assert run_advance(run_id=run.pk) == Outcome.DONE

    assert list(ticket.comments.filter(public=True).values_list("body", flat=True)) == [REPLY]
    action.refresh_from_db()
    assert action.status == "executed"
    observed = tool_results(bedrock.requests[0])["r1"]
    assert observed["ok"] is True and observed["meta"]["found_by_marker"] is True


def _zendesk_run(zendesk_api, external_id: str) -> AgentRun:
    zendesk_api.add_ticket(external_id, subject="Dashboard shows stale data")
    ticket = TicketFactory(tenant_link__tenant_id="acme", source="zendesk", external_id=external_id)
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="autonomous"), phase="autonomous")


def _public_replies(zendesk_api, external_id: str) -> list[str]:
    return [without_marker(c["body"]) for c in zendesk_api.comments[external_id] if c["public"]]


def test_it_finds_a_zendesk_reply_posted_before_a_crash_by_its_marker(bedrock, zendesk_api) -> None:
    run = _zendesk_run(zendesk_api, "35436")
    action = _interrupted_reply(run)
    bedrock.answer(200, converse_reply({"text": "Told the customer."}, stop="end_turn"))

    assert run_advance(run_id=run.pk) == Outcome.DONE

    assert _public_replies(zendesk_api, "35436") == [REPLY]
    assert len([p for p in zendesk_api.puts() if "comment" in p.json()["ticket"]]) == 1
    action.refresh_from_db()
    assert action.status == "executed"
    observed = tool_results(bedrock.requests[0])["r1"]
    assert observed["ok"] is True and observed["meta"]["found_by_marker"] is True


def test_it_looks_for_a_reply_whose_answer_was_lost_and_never_posts_it_twice(bedrock, zendesk_api, settings) -> None:
    settings.ZENDESK_TIMEOUT_SECONDS = 0.3
    zendesk_api.lose_next_put_answer = 0.8  # Zendesk adds the comment; its answer comes after the client gave up
    run = _zendesk_run(zendesk_api, "35437")
    bedrock.answer(200, converse_reply(tool_use("r1", "reply_to_customer", {"body": REPLY})))
    bedrock.answer(200, converse_reply(tool_use("r2", "reply_to_customer", {"body": REPLY})))  # the model insists
    bedrock.answer(200, converse_reply({"text": "Told the customer."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    assert _public_replies(zendesk_api, "35437") == [REPLY]
    action = ProposedAction.objects.get(run=run)
    assert action.status == "executed"
    assert tool_results(bedrock.requests[1])["r1"]["ok"] is True
    assert "already ran in this run" in tool_results(bedrock.requests[2])["r2"]["message"]


def test_it_resumes_a_run_whose_proposal_was_approved_before_the_run_was_marked_waiting(bedrock_company) -> None:
    ticket = TicketFactory(tenant_link__tenant_id="globex")
    run = AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage"), phase="triage")
    reviewer = UserFactory(groups=["reviewers"])
    start = Tenant.objects.get(pk="globex").trial_ends_at
    # The turn proposes a write, then makes a slow read: the reviewer approves while the read is in flight.
    FaultSwitch.objects.filter(pk=1).update(latency_ms=1500)
    bedrock_company.answer(
        200,
        converse_reply(
            tool_use("w", "extend_trial", {"tenant_id": "globex", "days": 7}),
            tool_use("r", "get_billing_status", {"tenant_id": "globex"}),
        ),
    )
    bedrock_company.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    def reviewer_at_work() -> None:
        try:
            deadline = time.monotonic() + 20
            while not ProposedAction.objects.filter(run=run, status="pending").exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            proposed_action_approve(action=ProposedAction.objects.get(run=run, status="pending"), user=reviewer)
            FaultSwitch.objects.filter(pk=1).update(latency_ms=0)
        finally:
            connection.close()

    reviewer_thread = threading.Thread(target=reviewer_at_work)
    reviewer_thread.start()
    first = run_advance(run_id=run.pk)
    reviewer_thread.join()

    assert first == Outcome.CONTINUE  # not paused: nothing is left to wait for
    assert drive(run.pk) == Outcome.DONE
    run.refresh_from_db()
    assert run.status == "completed"
    assert Tenant.objects.get(pk="globex").trial_ends_at == start + timedelta(days=7)
