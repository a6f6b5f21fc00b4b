"""A model turn that did not end normally — a guardrail, the token limit, a content filter, anything but a normal
end — is never taken as an answer nor acted on: the run escalates with a private note saying why and the ticket
goes to the humans pod. Through the real loop and the Bedrock path (HTTP Converse stand-in)."""

from __future__ import annotations

import pytest

from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction, Step
from sandbox.models import Tenant
from tests.bedrock import converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _run(phase: str = "autonomous") -> AgentRun:
    workflow = WorkflowFactory(phase=phase, preapproved_tools=["reset_tenant_cache"])
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="Dashboard shows stale data")
    return AgentRunFactory(ticket=ticket, workflow=workflow, phase=phase)


def _escalated_to_humans(run: AgentRun, settings, *words: str) -> None:
    run.refresh_from_db()
    assert run.status == AgentRun.Status.ESCALATED
    note = run.ticket.comments.get(public=False).body
    for word in words:
        assert word in run.status_reason and word in note
    assert not run.ticket.comments.filter(public=True).exists()
    run.ticket.refresh_from_db()
    assert run.ticket.group_id == settings.HELPDESK_PODS["humans"]


@pytest.mark.parametrize(
    ("stop", "why"),
    [
        ("guardrail_intervened", "a Bedrock guardrail intervened"),
        ("content_filtered", "a content filter withheld the output"),
        ("max_tokens", "cut off at the output token limit"),
        ("stop_sequence", "stopped at a stop sequence"),
        ("something_new", "a reason the agent does not know"),
    ],
)
def test_it_escalates_a_turn_that_ended_abnormally_instead_of_completing(bedrock, settings, stop, why) -> None:
    run = _run()
    bedrock.answer(200, converse_reply({"text": "Sorry, the model cannot answer this."}, stop=stop))

    assert run_advance(run_id=run.pk) == Outcome.DONE

    _escalated_to_humans(run, settings, stop, why)
    final = run.steps.filter(kind=Step.Kind.FINAL).first()
    assert final.stop_reason == stop and final.tool_output["abnormal_stop"]


def test_it_never_runs_the_tool_calls_of_a_turn_cut_off_at_the_token_limit(bedrock_company, settings) -> None:
    run = _run()
    version = Tenant.objects.get(pk="acme").cache_version
    bedrock_company.answer(
        200,
        converse_reply(
            {"text": "Resetting, then telling the customer"},
            tool_use("t1", "reset_tenant_cache", {"tenant_id": "acme"}),
            tool_use("t2", "reply_to_customer", {"body": "All fix"}),
            stop="max_tokens",
        ),
    )

    assert run_advance(run_id=run.pk) == Outcome.DONE

    _escalated_to_humans(run, settings, "max_tokens", "reset_tenant_cache, reply_to_customer were not made")
    assert not ProposedAction.objects.filter(run=run).exists()
    assert not run.steps.filter(kind=Step.Kind.ACTION).exists()
    assert Tenant.objects.get(pk="acme").cache_version == version


def test_it_escalates_an_empty_final_answer(bedrock, settings) -> None:
    run = _run()
    bedrock.answer(200, converse_reply({"text": "  "}, stop="end_turn"))

    assert run_advance(run_id=run.pk) == Outcome.DONE

    _escalated_to_humans(run, settings, "without an answer")


def test_it_escalates_an_abnormal_stop_recorded_just_before_a_crash(bedrock, settings) -> None:
    from agent.llm.conversation import ModelTurn
    from agent.services.transcript import agent_run_record_turn

    run = _run()
    AgentRun.objects.filter(pk=run.pk).update(status="running")
    # What a worker that died right after recording the turn leaves behind.
    turn = ModelTurn(text="Blocked.", tool_calls=[], stop_reason="guardrail_intervened")
    agent_run_record_turn(run=run, turn=turn, engine="bedrock:test", abnormal="a Bedrock guardrail intervened")

    assert run_advance(run_id=run.pk) == Outcome.DONE

    assert bedrock.requests == []  # the model is not asked again
    _escalated_to_humans(run, settings, "a Bedrock guardrail intervened")


def test_it_stores_the_whole_bedrock_model_id_as_the_engine(bedrock, settings) -> None:
    settings.BEDROCK_MODEL_ID = (
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/agent-console-claude-sonnet-production"
    )
    from agent import llm

    llm.engine_forget()
    run = _run()
    bedrock.answer(200, converse_reply({"text": "Nothing to do here."}, stop="end_turn"))

    assert run_advance(run_id=run.pk) == Outcome.DONE

    run.refresh_from_db()
    assert run.engine == f"bedrock:{settings.BEDROCK_MODEL_ID}"
    assert run.status == "completed"
