"""The model behind the loop, chosen by AGENT_LLM_PROVIDER: Claude on Amazon Bedrock (`bedrock.py`), or the
offline engine that follows the workflow's runbook (`offline.py`). Both answer the same question — given the
conversation so far, what next? — in the terms of `conversation.py`."""

from __future__ import annotations

import threading

from django.conf import settings

from agent.llm.bedrock import BedrockEngine
from agent.llm.conversation import Engine
from agent.llm.offline import OFFLINE_LABEL, OfflineEngine

_bedrock_engine: BedrockEngine | None = None
_bedrock_lock = threading.Lock()


def _bedrock() -> BedrockEngine:
    """The process's one engine, and so its one boto3 client and connection pool (sized to WORKER_CONCURRENCY).
    Built under a lock: a worker's threads all take their first task at once, and each built its own client
    (~0.1 s of CPU apiece, loading botocore's service model) before one of them won."""
    global _bedrock_engine
    if _bedrock_engine is None:
        with _bedrock_lock:
            if _bedrock_engine is None:
                _bedrock_engine = BedrockEngine()
    return _bedrock_engine


def engine_forget() -> None:
    """Build the engine again on next use (after settings or the endpoint changed: tests, a stand-in)."""
    global _bedrock_engine
    with _bedrock_lock:
        _bedrock_engine = None


def engine_label() -> str:
    """How the console names the engine in force: the offline engine always says it is not an LLM."""
    if settings.AGENT_LLM_PROVIDER == "bedrock":
        return f"Claude on Amazon Bedrock ({settings.BEDROCK_MODEL_ID})"
    return OFFLINE_LABEL


def engine_get() -> Engine:
    if settings.AGENT_LLM_PROVIDER == "bedrock":
        return _bedrock()
    return OfflineEngine()
