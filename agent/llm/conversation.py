"""What every engine is given and what it answers: the conversation so far in, a ModelTurn out — some text (the
thought, or the final answer when there are no tool calls) and the tool calls to make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

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
    """One model turn and the observations of its tool calls; `news`, what arrived on the ticket meanwhile (comments
    by the customer or support staff), shown with the observations."""

    text: str
    tool_calls: list[ToolCall]
    results: list[ToolResult]
    news: str = ""


@dataclass(frozen=True)
class Conversation:
    system_prompt: str
    ticket_prompt: str
    exchanges: list[Exchange]
    # For the offline engine: the workflow's structured runbook and the values its templates may use.
    playbook: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    # What arrived on the ticket since the last turn, shown after the last observations; and the comments this turn
    # shows for the first time (in the ticket prompt on the run's first turn), recorded with the turn so every later
    # turn shows them in the same place. None: nothing to record.
    news: str = ""
    comments_shown: list[int] | None = None


# Converse's stopReason for a turn that ended normally: with tool calls to make, or with the final answer.
STOP_TOOL_USE = "tool_use"
STOP_END_TURN = "end_turn"


@dataclass(frozen=True)
class ModelTurn:
    text: str
    tool_calls: list[ToolCall]
    tokens_in: int = 0  # every input token, the cached ones included
    tokens_out: int = 0
    latency_ms: int = 0
    stop_reason: str = ""  # Converse's stopReason (end_turn, tool_use, max_tokens, ...); the offline engine's own
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def abnormal_stop(self) -> str:
        """Why this turn must not be used, or "" when it ended normally: asking for tools (tool_use, or end_turn
        with complete tool calls), or answering with text (end_turn). A guardrail, a token limit, a content filter,
        a stop sequence or a stop reason we do not know all mean the output is cut short or withheld."""
        if self.tool_calls and self.stop_reason in (STOP_TOOL_USE, STOP_END_TURN):
            return ""
        if not self.tool_calls and self.stop_reason == STOP_END_TURN and self.text.strip():
            return ""
        if self.stop_reason == STOP_END_TURN:
            return "the model ended its turn without an answer or a tool call"
        if self.stop_reason == STOP_TOOL_USE:
            return "the model said it would use a tool but sent no tool call"
        return STOP_EXPLANATIONS.get(self.stop_reason, "the model stopped for a reason the agent does not know")


STOP_EXPLANATIONS = {
    "guardrail_intervened": "a Bedrock guardrail intervened",
    "content_filtered": "a content filter withheld the output",
    "max_tokens": "the answer was cut off at the output token limit",
    "model_context_window_exceeded": "the conversation no longer fits the model's context window",
    "stop_sequence": "the output stopped at a stop sequence",
    "malformed_model_output": "the model's output was malformed",
    "malformed_tool_use": "the model's tool call was malformed",
    "": "the model did not say why it stopped",
}


class EngineError(Exception):
    """The model could not answer. retryable: try the same turn again later (throttling, a timeout)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Engine(Protocol):
    name: str
    is_llm: bool

    def next_turn(self, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn: ...
