"""The model behind the loop, chosen by AGENT_LLM_PROVIDER: Claude on Amazon Bedrock (`bedrock.py`), or the
offline engine that follows the workflow's runbook (`offline.py`). Both answer the same question — given the
conversation so far, what next? — in the terms of `conversation.py`."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from agent.llm.bedrock import BedrockEngine
from agent.llm.conversation import Engine
from agent.llm.offline import OFFLINE_LABEL, OfflineEngine


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
