"""Plain helpers for tests that talk to the Bedrock stand-in (the `bedrock` fixture, tests/conftest.py): Converse
replies, the observations a request carries back, and driving a run in this process."""

from __future__ import annotations

import json


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


def drive(run_id: int, limit: int = 20):
    """Advance a run in this process until it pauses or ends."""
    from agent.loop import Outcome, run_advance

    outcome = Outcome.CONTINUE
    for _ in range(limit):
        outcome = run_advance(run_id=run_id)
        if outcome != Outcome.CONTINUE:
            break
    return outcome
