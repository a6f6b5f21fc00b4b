"""The model behind the loop, chosen by AGENT_LLM_PROVIDER: Claude on Amazon Bedrock, or the offline engine.

Both answer the same question — given the conversation so far, what next? — with a ModelTurn: some text (the
thought, or the final answer when there are no tool calls) and the tool calls to make.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from django.conf import settings

ESCALATE_TOOL = "escalate_to_human"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    tool_call_id: str
    name: str
    observation: dict[str, Any]


@dataclass(frozen=True)
class Exchange:
    """One model turn and the observations of its tool calls."""

    text: str
    tool_calls: list[ToolCall]
    results: list[ToolResult]


@dataclass(frozen=True)
class Conversation:
    system_prompt: str
    ticket_prompt: str
    exchanges: list[Exchange]
    # For the offline engine: the workflow's structured runbook and the values its templates may use.
    playbook: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelTurn:
    text: str
    tool_calls: list[ToolCall]
    tokens_in: int = 0  # every input token, the cached ones included
    tokens_out: int = 0
    latency_ms: int = 0
    stop_reason: str = ""  # the model's own (end_turn, tool_use, max_tokens, ...); empty for the offline engine
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class EngineError(Exception):
    """The model could not answer. retryable: try the same turn again later (throttling, a timeout)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Engine(Protocol):
    name: str
    is_llm: bool

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn: ...


# --- Bedrock ------------------------------------------------------------------------------------------------


class BedrockEngine:
    """Claude through langchain-aws' ChatBedrockConverse, with the system prompt and tool specs cached."""

    is_llm = True

    def __init__(self, *, client: Any = None) -> None:
        from botocore.config import Config
        from langchain_aws import ChatBedrockConverse

        from agent.aws import aws_client

        self.model_id = settings.BEDROCK_MODEL_ID
        self.name = f"bedrock:{self.model_id}"
        config = Config(
            retries={"mode": "adaptive", "total_max_attempts": settings.BEDROCK_MAX_ATTEMPTS},
            read_timeout=settings.BEDROCK_TIMEOUT_SECONDS,
            connect_timeout=10,
        )
        if client is None:
            # boto3 honours AWS_ENDPOINT_URL_BEDROCK_RUNTIME (e.g. a VPC endpoint) on its own.
            client = aws_client("bedrock-runtime", config=config)
        guardrail = None
        if settings.BEDROCK_GUARDRAIL_ID:
            guardrail = {
                "guardrailIdentifier": settings.BEDROCK_GUARDRAIL_ID,
                "guardrailVersion": settings.BEDROCK_GUARDRAIL_VERSION,
                "trace": "disabled",
            }
        self._chat = ChatBedrockConverse(
            model=self.model_id,
            client=client,
            bedrock_client=client,  # never used for a control-plane call with a plain model id
            region_name=settings.AWS_REGION,
            max_tokens=settings.BEDROCK_MAX_OUTPUT_TOKENS,
            temperature=0,
            guardrail_config=guardrail,
        )

    @staticmethod
    def _messages(conversation: Conversation) -> list[Any]:
        from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

        messages: list[Any] = [HumanMessage(content=conversation.ticket_prompt)]
        for exchange in conversation.exchanges:
            messages.append(
                AIMessage(
                    content=exchange.text,
                    tool_calls=[{"name": c.name, "args": c.args, "id": c.id} for c in exchange.tool_calls],
                )
            )
            messages.extend(
                ToolMessage(content=json.dumps(r.observation, default=str), tool_call_id=r.tool_call_id)
                for r in exchange.results
            )
        return messages

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn:
        from botocore.exceptions import BotoCoreError, ClientError

        specs: list[dict[str, Any]] = [
            {
                "toolSpec": {
                    "name": t["name"],
                    "description": t["description"],
                    "inputSchema": {"json": t["input_schema"]},
                }
            }
            for t in tools
        ]
        specs.append({"cachePoint": {"type": "default"}})
        system = [conversation.system_prompt, {"cachePoint": {"type": "default"}}]
        chat = self._chat.model_copy(update={"system": system}).bind_tools(specs)
        started = time.monotonic()
        try:
            reply = chat.invoke(self._messages(conversation))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            retryable = code in {"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException"}
            raise EngineError(f"Bedrock refused the call: {code or exc}", retryable=retryable) from exc
        except BotoCoreError as exc:
            raise EngineError(f"Bedrock could not be reached: {exc}", retryable=True) from exc
        latency_ms = int((time.monotonic() - started) * 1000)
        usage = reply.usage_metadata or {}
        cached = usage.get("input_token_details") or {}
        return ModelTurn(
            text=_text_of(reply.content),
            tool_calls=[ToolCall(id=c["id"], name=c["name"], args=dict(c.get("args") or {})) for c in reply.tool_calls],
            tokens_in=int(usage.get("input_tokens", 0)),
            tokens_out=int(usage.get("output_tokens", 0)),
            latency_ms=latency_ms,
            stop_reason=str(reply.response_metadata.get("stopReason", "")),
            cache_read_tokens=int(cached.get("cache_read", 0)),
            cache_write_tokens=int(cached.get("cache_creation", 0)),
        )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text"]
    return "\n".join(p for p in parts if p)


# --- Offline ------------------------------------------------------------------------------------------------

OFFLINE_LABEL = "Offline engine (deterministic runbook follower, not an LLM)"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_MAX_ATTEMPTS_PER_STEP = 2


class OfflineEngine:
    """Follows the workflow's playbook step by step, through the same loop and gates as a model.

    It reacts to what it observes: a retryable error is tried again once, a step with an `alternative` falls
    back to it, a rejection or any other failure escalates to humans with the reason.
    """

    name = "offline"
    is_llm = False

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn:
        plan = conversation.playbook
        if not plan:
            return self._escalate("There is no runbook playbook for this kind of ticket; a human should take it.")
        step, attempt, variant = 0, 0, "main"
        if conversation.exchanges:
            last = conversation.exchanges[-1]
            if not last.tool_calls:
                return ModelTurn(text="Done.", tool_calls=[])
            step, attempt, variant = _parse_call_id(last.tool_calls[-1].id)
            result = last.results[-1].observation if last.results else {"ok": False, "message": "no observation"}
            if result.get("ok"):
                step, attempt, variant = step + 1, 0, "main"
            elif result.get("retryable") and attempt + 1 < _MAX_ATTEMPTS_PER_STEP:
                attempt += 1
            elif variant == "main" and plan[step].get("alternative"):
                attempt, variant = 0, "alt"
            else:
                why = result.get("message") or result.get("error_type") or "the step failed"
                return self._escalate(f"Runbook step {step + 1} ({plan[step]['tool']}) could not be completed: {why}")
        if step >= len(plan):
            return ModelTurn(text="Every runbook step is done.", tool_calls=[])
        spec = plan[step] if variant == "main" else plan[step]["alternative"]
        values = dict(conversation.variables)
        values.setdefault("findings", NOTHING_FOUND)
        missing = _missing_values(spec, values)
        if missing:
            names = ", ".join(f"{{{name}}}" for name in missing)
            return self._escalate(
                f"Runbook step {step + 1} ({spec['tool']}) needs {names}, which this ticket does not have "
                f"({_MISSING_WHY.get(missing[0], 'no value')}); a human must take it."
            )
        args = {
            key: _fill(value, values, quote=_quoting(spec["tool"], key)) for key, value in spec.get("args", {}).items()
        }
        thought = f"Runbook step {step + 1} of {len(plan)}: {spec.get('why') or spec['tool']}"
        if attempt:
            thought += f" (attempt {attempt + 1} after a retryable error)"
        if variant == "alt":
            thought += " (the alternative, after the main step failed)"
        return ModelTurn(
            text=thought, tool_calls=[ToolCall(id=f"rb-{step}-{attempt}-{variant}", name=spec["tool"], args=args)]
        )

    @staticmethod
    def _escalate(reason: str) -> ModelTurn:
        return ModelTurn(
            text=reason, tool_calls=[ToolCall(id="rb-escalate", name=ESCALATE_TOOL, args={"reason": reason})]
        )


def _parse_call_id(call_id: str) -> tuple[int, int, str]:
    _, step, attempt, variant = call_id.split("-")
    return int(step), int(attempt), variant


# Values that may be empty in a note; any other placeholder with no value stops the runbook (never `email = ''`).
_MAY_BE_EMPTY = frozenset({"findings", "routing", "history", "latest_comment", "full_data"})
_MISSING_WHY = {
    "requester_email": "the helpdesk has no e-mail for the requester",
    "ticket_email": "the helpdesk has no e-mail for the requester",
    "requester_name": "the helpdesk has no name for the requester",
    "tenant_id": "the ticket's organization is not linked to a tenant",
}
NOTHING_FOUND = "• nothing found yet"


def _placeholders(value: Any) -> list[str]:
    return _PLACEHOLDER.findall(value) if isinstance(value, str) else []


def _missing_values(spec: dict[str, Any], values: dict[str, str]) -> list[str]:
    used = [name for value in spec.get("args", {}).values() for name in _placeholders(value)]
    return [
        name for name in dict.fromkeys(used) if name in values and not str(values[name]) and name not in _MAY_BE_EMPTY
    ]


def _quoting(tool: str, arg: str) -> Callable[[str], str]:
    """How a value is written into a templated argument: as a SQL string literal's content in run_sql's query, as a
    quoted term's content in search_logs' filter pattern, as it is elsewhere."""
    if (tool, arg) == ("run_sql", "query"):
        return lambda text: text.replace("'", "''")
    if (tool, arg) == ("search_logs", "query"):
        return lambda text: text.replace("\\", "\\\\").replace('"', '\\"')
    return lambda text: text


def _fill(value: Any, values: dict[str, str], *, quote: Any = None) -> Any:
    if isinstance(value, str):
        escape = quote or (lambda text: text)
        return _PLACEHOLDER.sub(
            lambda m: escape(str(values[m.group(1)])) if m.group(1) in values else m.group(0), value
        )
    return value


@cache
def _bedrock() -> BedrockEngine:
    return BedrockEngine()


def engine_label() -> str:
    """How the console names the engine in force: the offline engine always says it is not an LLM."""
    if settings.AGENT_LLM_PROVIDER == "bedrock":
        return f"Claude on Amazon Bedrock ({settings.BEDROCK_MODEL_ID})"
    return OFFLINE_LABEL


def engine_get() -> Engine:
    if settings.AGENT_LLM_PROVIDER == "bedrock":
        return _bedrock()
    return OfflineEngine()
