"""Offline stand-ins for what is out of our reach: the Bedrock Converse API (a local HTTP server reached
through AWS_ENDPOINT_URL_BEDROCK_RUNTIME, so the real langchain-aws and botocore code runs), plus the company
(tests/conftest.py) for tests that need its systems."""

from __future__ import annotations

import json

import pytest

from agent import llm
from tests.http_standin import Scripted, StandIn, serve


def converse_reply(*blocks: dict, stop: str = "tool_use", tokens: tuple[int, int] = (120, 30)) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": list(blocks)}},
        "stopReason": stop,
        "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
        "metrics": {"latencyMs": 12},
    }


def tool_use(tool_id: str, name: str, args: dict) -> dict:
    return {"toolUse": {"toolUseId": tool_id, "name": name, "input": args}}


THROTTLED = (429, {"message": "Too many requests"}, {"x-amzn-ErrorType": "ThrottlingException"})


@pytest.fixture
def bedrock(monkeypatch, settings):
    """A stand-in of the Bedrock Converse API on 127.0.0.1, reached the way a VPC endpoint would be."""
    for standin in serve():
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        settings.AGENT_LLM_PROVIDER = "bedrock"
        settings.AGENT_ROLE_ARN = ""
        settings.BEDROCK_MAX_ATTEMPTS = 3
        llm._bedrock.cache_clear()
        yield standin
        llm._bedrock.cache_clear()


@pytest.fixture
def bedrock_company(bedrock, company):
    """The Bedrock stand-in, and the seeded company (tests/conftest.py)."""
    company.seed()
    return bedrock


def tool_results(request) -> dict[str, dict]:
    """The observations a Converse request hands back to the model, by tool use id."""
    content = request.json()["messages"][-1]["content"]
    results = [block["toolResult"] for block in content if "toolResult" in block]
    return {r["toolUseId"]: json.loads(r["content"][0]["text"]) for r in results}


def tenant_body(**fields: object) -> dict:
    """A tenant as the Admin API answers GET /tenants/{id}."""
    return {
        "tenant_id": "acme",
        "name": "Acme Analytics",
        "plan": "growth",
        "status": "active",
        "trial_ends_at": None,
        "cache_version": 5,
        "cache_reset_at": None,
        **fields,
    }


@pytest.fixture
def admin_standin(settings):
    """A stand-in of the company's Admin API, scripted per test: one attempt per call, a short timeout."""
    for standin in serve(StandIn(fallback=Scripted(500, {"error": {"code": "unscripted", "message": "no script"}}))):
        settings.ADMIN_API_URL = standin.url
        settings.ADMIN_API_MAX_ATTEMPTS = 1
        settings.ADMIN_API_TIMEOUT_SECONDS = 0.5
        yield standin


def drive(run_id: int, limit: int = 20):
    """Advance a run in this process until it pauses or ends."""
    from agent.loop import Outcome, run_advance

    outcome = Outcome.CONTINUE
    for _ in range(limit):
        outcome = run_advance(run_id=run_id)
        if outcome != Outcome.CONTINUE:
            break
    return outcome
