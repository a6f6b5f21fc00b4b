"""The LangGraph anchor of bench/episode.py; runs in bench/.venv-langgraph (bench/requirements-langgraph.txt).

The same episode as the product's: a zero-latency model asks for one write, a person approves it (LangChain's
human-in-the-loop middleware), the write runs and is verified by re-reading what it wrote, the model answers; the
state is checkpointed in PostgreSQL by PostgresSaver. Driven over stdin/stdout by episode.py: each line read is a
number of episodes to run; each answer is one JSON line of totals (wall and CPU seconds, statements, commits).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.types import Command
from psycopg.rows import dict_row

COUNTS = {"statements": 0, "commits": 0}
STORE: dict[str, int] = {}


class CountingConnection(psycopg.Connection):
    """Counts what PostgresSaver sends: statements, and commits (a statement in autocommit, or the end of an
    outermost transaction or pipeline block)."""

    depth = 0

    @contextmanager
    def _block(self, inner: Any) -> Iterator[Any]:
        if self.depth == 0:
            COUNTS["commits"] += 1
        self.depth += 1
        try:
            with inner as value:
                yield value
        finally:
            self.depth -= 1

    def transaction(self, *args: Any, **kwargs: Any) -> Any:
        return self._block(super().transaction(*args, **kwargs))

    def pipeline(self) -> Any:
        return self._block(super().pipeline())


class CountingCursor(psycopg.Cursor):
    def _count(self, n: int) -> None:
        COUNTS["statements"] += n
        if getattr(self.connection, "depth", 0) == 0:
            COUNTS["commits"] += n

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self._count(1)
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        params_seq = list(params_seq)
        self._count(len(params_seq))
        return super().executemany(query, params_seq, **kwargs)


class ScriptedModel(BaseChatModel):
    """Answers instantly: the write first, then the final answer once the write's result is in."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        if any(isinstance(m, ToolMessage) for m in messages):
            message = AIMessage(content="Done: the value is set and verified.")
        else:
            call = {"name": "bench_set_value", "args": {"value": 7}, "id": f"call-{uuid.uuid4().hex[:8]}"}
            message = AIMessage(content="Set the value.", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def bench_set_value(value: int) -> dict[str, Any]:
    """Set the bench value, then re-read it to verify the write."""
    key = "bench"
    STORE[key] = value
    return {"ok": True, "data": {"value": value}, "verified": STORE.get(key) == value}


def main() -> None:
    dsn = sys.argv[1]
    conn = CountingConnection.connect(
        dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row, cursor_factory=CountingCursor
    )
    saver = PostgresSaver(conn)
    saver.setup()
    agent = create_agent(
        ScriptedModel(),
        tools=[bench_set_value],
        system_prompt="You are a support agent.",
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"bench_set_value": True})],
        checkpointer=saver,
    )

    def episode() -> None:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        first = agent.invoke({"messages": [{"role": "user", "content": "Please set my value."}]}, config)
        assert first.get("__interrupt__"), "the write did not wait for approval"
        final = agent.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
        assert final["messages"][-1].content.startswith("Done"), final["messages"][-1]

    episode()  # warm up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        n = int(line)
        COUNTS.update(statements=0, commits=0)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            episode()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"wall": wall, "cpu": cpu, **COUNTS}), flush=True)


if __name__ == "__main__":
    main()
