from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent.aws import clear_credentials_cache
from agent.llm.bedrock import USER_AGENT, BedrockEngine
from agent.llm.conversation import Conversation, EngineError, Exchange, ToolCall, ToolResult
from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_reject
from tests.bedrock import THROTTLED, converse_reply, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory
from tests.http_standin import serve

pytestmark = pytest.mark.django_db


def _conversation() -> Conversation:
    return Conversation(
        system_prompt="You are an agent.", ticket_prompt="<untrusted_ticket>hi</untrusted_ticket>", exchanges=[]
    )


TOOLS = [{"name": "run_sql", "description": "Read views.", "input_schema": {"type": "object", "properties": {}}}]


def test_it_sends_a_converse_request_with_cached_system_and_tools_and_reads_a_tool_use_turn(bedrock) -> None:
    bedrock.answer(200, converse_reply({"text": "Let me look."}, tool_use("tu-1", "run_sql", {"query": "SELECT 1"})))
    turn = BedrockEngine().next_turn(_conversation(), TOOLS)

    [request] = bedrock.requests
    assert request.method == "POST"
    assert request.path == "/model/us.anthropic.claude-sonnet-4-6/converse"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    body = request.json()
    assert body["system"] == [{"text": "You are an agent."}, {"cachePoint": {"type": "default"}}]
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "run_sql"
    assert body["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    assert body["messages"][0]["content"][0]["text"] == "<untrusted_ticket>hi</untrusted_ticket>"
    assert body["messages"][0]["content"][-1] == {"cachePoint": {"type": "default"}}
    assert turn.text == "Let me look."
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [("tu-1", "run_sql", {"query": "SELECT 1"})]
    assert (turn.tokens_in, turn.tokens_out) == (120, 30)


def test_it_caches_the_history_and_sends_the_tools_in_a_stable_order(bedrock) -> None:
    exchange = Exchange(
        text="Looking.",
        tool_calls=[ToolCall(id="tu-1", name="run_sql", args={"query": "SELECT 1"})],
        results=[ToolResult(tool_call_id="tu-1", name="run_sql", observation={"ok": True, "data": [1]})],
    )
    conversation = Conversation(system_prompt="You are an agent.", ticket_prompt="hi", exchanges=[exchange])
    tools = [{**TOOLS[0], "name": name} for name in ("search_logs", "run_sql", "escalate_to_human")]
    bedrock.answer(200, converse_reply({"text": "Done."}, stop="end_turn"))
    BedrockEngine().next_turn(conversation, tools)

    body = bedrock.requests[0].json()
    names = [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"] if "toolSpec" in t]
    assert names == ["escalate_to_human", "run_sql", "search_logs"]
    cached = [m["role"] for m in body["messages"] if {"cachePoint": {"type": "default"}} in m["content"]]
    # The end of the history (the model's last turn and its results): the next turn reads all of it from the cache.
    assert cached == ["assistant", "user"]
    assert body["messages"][-1]["content"][0]["toolResult"]["toolUseId"] == "tu-1"


def test_it_sends_each_turn_its_own_system_prompt_and_tools_with_one_engine(bedrock) -> None:
    engine = BedrockEngine()  # one per worker process, serving every run
    other_tools = [{**TOOLS[0], "name": "search_logs"}]
    turns = [("You are an agent.", TOOLS), ("You are an agent for acme.", TOOLS), ("You are an agent.", other_tools),
             ("You are an agent.", TOOLS)]  # fmt: skip
    for system, tools in turns:
        bedrock.answer(200, converse_reply({"text": "Done."}, stop="end_turn"))
        engine.next_turn(Conversation(system_prompt=system, ticket_prompt="hi", exchanges=[]), tools)

    sent = [
        (r.json()["system"][0]["text"], r.json()["toolConfig"]["tools"][0]["toolSpec"]["name"])
        for r in bedrock.requests
    ]
    assert sent == [(system, tools[0]["name"]) for system, tools in turns]


def test_it_retries_throttling_inside_the_client(bedrock) -> None:
    bedrock.answer(*THROTTLED)
    bedrock.answer(*THROTTLED)
    bedrock.answer(200, converse_reply({"text": "All done."}, stop="end_turn"))
    turn = BedrockEngine().next_turn(_conversation(), TOOLS)
    assert len(bedrock.requests) == 3
    assert (turn.text, turn.tool_calls) == ("All done.", [])


def test_it_reports_throttling_past_the_retries_as_retryable(bedrock) -> None:
    for _ in range(3):
        bedrock.answer(*THROTTLED)
    with pytest.raises(EngineError) as caught:
        BedrockEngine().next_turn(_conversation(), TOOLS)
    assert caught.value.retryable is True
    assert "ThrottlingException" in str(caught.value)


def test_it_sends_the_guardrail_when_configured(bedrock, settings) -> None:
    settings.BEDROCK_GUARDRAIL_ID, settings.BEDROCK_GUARDRAIL_VERSION = "gr-123", "4"
    bedrock.answer(200, converse_reply({"text": "ok"}, stop="end_turn"))
    BedrockEngine().next_turn(_conversation(), TOOLS)
    assert bedrock.requests[0].json()["guardrailConfig"]["guardrailIdentifier"] == "gr-123"


def test_it_shows_the_model_a_malformed_tool_input_as_an_error_and_goes_on(bedrock) -> None:
    run = AgentRunFactory(ticket=TicketFactory(tenant_link__tenant_id="acme"), phase="triage", status="running")
    bedrock.answer(200, converse_reply(tool_use("tu-1", "run_sql", {"query": 42})))
    assert run_advance(run_id=run.pk) == Outcome.CONTINUE
    bedrock.answer(200, converse_reply({"text": "I could not query; routing to humans."}, stop="end_turn"))
    assert run_advance(run_id=run.pk) == Outcome.DONE

    second = bedrock.requests[1].json()
    tool_result = second["messages"][-1]["content"][0]["toolResult"]
    observation = json.loads(tool_result["content"][0]["text"])
    assert tool_result["toolUseId"] == "tu-1"
    assert (observation["ok"], observation["error_type"]) == (False, "invalid_arguments")
    run.refresh_from_db()
    assert run.status == AgentRun.Status.COMPLETED
    assert (run.tokens_in, run.tokens_out) == (240, 60)
    assert list(run.steps.values_list("kind", flat=True)) == ["thought", "action", "observation", "final"]


def test_it_gives_the_model_the_reviewers_rejection_reason(bedrock) -> None:
    workflow = WorkflowFactory(phase="triage")
    run = AgentRunFactory(ticket=TicketFactory(tenant_link__tenant_id="acme"), workflow=workflow, phase="triage")
    bedrock.answer(
        200, converse_reply({"text": "Reset it."}, tool_use("tu-9", "reset_tenant_cache", {"tenant_id": "acme"}))
    )
    assert run_advance(run_id=run.pk) == Outcome.PAUSED
    action = ProposedAction.objects.get(run=run)
    assert action.status == "pending"
    proposed_action_reject(action=action, user=UserFactory(groups=["reviewers"]), reason="Customer is on a freeze week")

    bedrock.answer(200, converse_reply({"text": "Understood, escalating."}, stop="end_turn"))
    assert run_advance(run_id=run.pk) == Outcome.DONE
    tool_result = bedrock.requests[1].json()["messages"][-1]["content"][0]["toolResult"]
    assert "Their reason: Customer is on a freeze week" in tool_result["content"][0]["text"]


def _assume_role_answer(access_key: str, expires_in: timedelta) -> bytes:
    expiration = (datetime.now(UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>secret-{access_key}</SecretAccessKey>
      <SessionToken>token-{access_key}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::111111111111:assumed-role/agent-console/agent-console</Arn>
      <AssumedRoleId>AROAEXAMPLE:agent-console</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>r-{access_key}</RequestId></ResponseMetadata>
</AssumeRoleResponse>""".encode()


@pytest.fixture
def sts(monkeypatch, settings):
    """A stand-in of STS (AWS_ENDPOINT_URL_STS), so the real botocore assume-role and refresh code runs."""
    for standin in serve():
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", standin.url)
        settings.AGENT_ROLE_ARN = "arn:aws:iam::111111111111:role/agent-console"
        clear_credentials_cache()
        yield standin
        clear_credentials_cache()


def test_it_assumes_the_role_again_before_its_credentials_expire(bedrock, sts) -> None:
    # The first credentials are within botocore's 15-minute refresh window; the next ones last an hour.
    sts.answer(200, raw=_assume_role_answer("ASIAFIRST", timedelta(minutes=14)))
    sts.answer(200, raw=_assume_role_answer("ASIASECOND", timedelta(hours=1)))
    for _ in range(3):
        bedrock.answer(200, converse_reply({"text": "ok"}, stop="end_turn"))

    engine = BedrockEngine()  # one client for the worker's life, as in production
    for _ in range(3):
        engine.next_turn(_conversation(), TOOLS)

    signed_with = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in bedrock.requests]
    assert signed_with == ["ASIAFIRST", "ASIASECOND", "ASIASECOND"]
    assert [r.body.decode().split("Action=")[1].split("&")[0] for r in sts.requests] == ["AssumeRole"] * 2
    assert "RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fagent-console" in sts.requests[0].body.decode()
    assert bedrock.requests[1].headers["x-amz-security-token"] == "token-ASIASECOND"


def test_it_sends_a_fixed_user_agent_that_botocore_does_not_rebuild_per_call(bedrock) -> None:
    bedrock.answer(200, converse_reply({"text": "Done."}, stop="end_turn"))
    bedrock.answer(200, converse_reply({"text": "Done."}, stop="end_turn"))
    engine = BedrockEngine()
    engine.next_turn(_conversation(), TOOLS)
    engine.next_turn(_conversation(), TOOLS)

    agents = [request.headers["user-agent"] for request in bedrock.requests]
    assert agents[0] == agents[1]
    assert agents[0].startswith(USER_AGENT)
    assert "ua/2.1" not in agents[0]  # botocore's own per-request string (its parts sanitised on every call)
