"""Claude on Amazon Bedrock, through langchain-aws' ChatBedrockConverse."""

from __future__ import annotations

import json
import platform
import threading
import time
from collections import OrderedDict
from typing import Any

import boto3
import botocore
from django.conf import settings

from agent.llm.conversation import Conversation, EngineError, ModelTurn, ToolCall

CACHE_CONTROL = {"type": "ephemeral"}  # Bedrock's default cache (5 minutes), renewed on every read
CLAUDE_BASE_MODEL = "anthropic.claude"
USER_AGENT = (
    f"agent-console Boto3/{boto3.__version__} md/Botocore#{botocore.__version__} "
    f"lang/python#{platform.python_version()}"
)
BOUND_CHATS_KEPT = 64  # (system prompt, tools) pairs: about one per workflow, phase and tenant at work


class BedrockEngine:
    """Claude through langchain-aws' ChatBedrockConverse, with the system prompt and tool specs cached."""

    is_llm = True

    def __init__(self, *, client: Any = None, model_id: str = "") -> None:
        from botocore.config import Config
        from langchain_aws import ChatBedrockConverse

        from agent.aws import aws_client

        # A replay runs the model a workflow version recorded, which may not be the one configured now.
        self.model_id = model_id or settings.BEDROCK_MODEL_ID
        self.name = f"bedrock:{self.model_id}"
        config = Config(
            retries={"mode": "adaptive", "total_max_attempts": settings.BEDROCK_MAX_ATTEMPTS},
            read_timeout=settings.BEDROCK_TIMEOUT_SECONDS,
            connect_timeout=10,
            # One client serves every thread of the worker: a pool smaller than the threads makes them wait on it
            # ("Connection pool is full" in the log).
            max_pool_connections=settings.WORKER_CONCURRENCY,
            # Bedrock validates every request itself (a ValidationException, which escalates the run); botocore's
            # own check walked the whole conversation again on every turn, and called a bad request retryable.
            parameter_validation=False,
            # A fixed User-Agent: botocore otherwise rebuilds its own (sanitising each of ~40 parts, twice a request),
            # ~0.5 ms of CPU a call (a tenth of the client's). langchain-aws still appends its user_agent_extra.
            user_agent=USER_AGENT,
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
        arn: dict[str, str] = {}
        if self.model_id.startswith("arn:"):
            # An inference-profile or provisioned-model ARN names no provider, and langchain-aws would otherwise ask
            # the control plane (bedrock:GetInferenceProfile, which the worker's role need not allow) for the model
            # behind it. This product runs Claude: say so.
            arn = {"provider": "anthropic", "base_model_id": CLAUDE_BASE_MODEL}
        self._bound: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._bound_lock = threading.Lock()
        self._chat = ChatBedrockConverse(
            model=self.model_id,
            client=client,
            bedrock_client=client,  # never used for a control-plane call: model ids and ARNs are resolved above
            region_name=settings.AWS_REGION,
            max_tokens=settings.BEDROCK_MAX_OUTPUT_TOKENS,
            temperature=0,
            guardrail_config=guardrail,
            **arn,
        )

    def _bound_chat(self, system: str, tools: list[dict[str, Any]]) -> Any:
        """The chat model with this system prompt and these tools, kept for the next turns that use the same (a
        workflow's runs share them): langchain serialises a new model for its callbacks on its first call."""
        key = (system, frozenset(_spec_json(t) for t in tools))
        with self._bound_lock:
            chat = self._bound.get(key)
            if chat is not None:
                self._bound.move_to_end(key)
                return chat
        # Sorted, so the tools (the first part of the prompt Bedrock caches) are the same bytes on every turn.
        specs: list[dict[str, Any]] = [
            {
                "toolSpec": {
                    "name": t["name"],
                    "description": t["description"],
                    "inputSchema": {"json": t["input_schema"]},
                }
            }
            for t in sorted(tools, key=lambda t: t["name"])
        ]
        chat = self._chat.model_copy(update={"system": [system]}).bind_tools(specs)
        with self._bound_lock:
            self._bound[key] = chat
            while len(self._bound) > BOUND_CHATS_KEPT:
                self._bound.popitem(last=False)
        return chat

    @staticmethod
    def _messages(conversation: Conversation) -> list[Any]:
        # Each turn encodes every observation again, and nothing is kept for the next: a run's turns are separate
        # tasks that any worker process may take, each building the conversation from the transcript its claim read,
        # and the encoding is ~0.05 ms of a call's ~13 ms of worker CPU (bench/tokens.py under cProfile).
        # With sorted keys: a turn asked in the advance that ran a call (a run resumed after an approval or a crash)
        # holds its observation as the tool built it, every later turn as PostgreSQL's jsonb gives it back (keys by
        # length, then bytes). Bedrock reads the history from its cache only if it is the same bytes every turn.
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
                ToolMessage(content=json.dumps(r.observation, default=str, sort_keys=True), tool_call_id=r.tool_call_id)
                for r in exchange.results
            )
            # What arrived on the ticket meanwhile: a text block after the observations, in the same user message
            # (langchain-aws merges them), where it stays on every later turn.
            if exchange.news:
                messages.append(HumanMessage(content=exchange.news))
        if conversation.news:
            messages.append(HumanMessage(content=conversation.news))
        return messages

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn:
        from botocore.exceptions import BotoCoreError, ClientError

        chat = self._bound_chat(conversation.system_prompt, tools)
        started = time.monotonic()
        try:
            # langchain-aws places the cache points: after the tools, after the system prompt, and at the end of the
            # history (its last two messages), so each turn reads the whole previous prompt from Bedrock's cache and
            # pays full price only for what the last turn added.
            reply = chat.invoke(self._messages(conversation), cache_control=CACHE_CONTROL)
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
            # langchain-aws keeps Converse's stopReason in the message's response_metadata.
            stop_reason=str((reply.response_metadata or {}).get("stopReason") or ""),
            cache_read_tokens=int(cached.get("cache_read", 0)),
            cache_write_tokens=int(cached.get("cache_creation", 0)),
        )


# A tool's spec is the same dict while the tool stays the same (Tool.spec): its JSON is kept with it (the dict held
# too, so its id is not reused), and a turn encodes no spec to find its bound chat.
_spec_jsons: dict[int, tuple[dict[str, Any], str]] = {}


def _spec_json(spec: dict[str, Any]) -> str:
    held = _spec_jsons.get(id(spec))
    if held is not None and held[0] is spec:
        return held[1]
    encoded = json.dumps(spec, sort_keys=True)
    if len(_spec_jsons) >= 1024:  # specs rebuilt on every call would otherwise pile up
        _spec_jsons.clear()
    _spec_jsons[id(spec)] = (spec, encoded)
    return encoded


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [block.get("text", "") for block in content if isinstance(block, dict) and block.get("type") == "text"]
    return "\n".join(p for p in parts if p)
