"""A local stand-in of Bedrock's Converse API for the bench scripts: a scripted model with a fixed latency that
bills tokens the way Bedrock does, prompt caching included.

The product reaches it through AWS_ENDPOINT_URL_BEDROCK_RUNTIME, so botocore and langchain-aws run as in
production. The model calls `tool` `calls` times (a read tool), then answers; given `write_at`, that call is
`write` instead. Tokens are estimated at 4 characters each. Caching follows Bedrock's rules for Claude: the prompt
is tools, then system, then messages; a cachePoint marks the end of a cacheable prefix of at least
MIN_CACHE_TOKENS; a request reads the longest prefix cached before (5 minutes) that ends at a cache point or up to
20 blocks before one, writes the prefixes it marks that were not, and pays full price for the rest.

It is one asyncio loop on a thread of its own: a call waiting out its latency costs a timer, not a thread, so
the stand-in stays a small share of the CPU the bench measures (it shares the machine with the workers). It
speaks HTTP/1.1 with keep-alive as Bedrock does, answers `POST /model/{modelId}/converse` only, and refuses a
malformed conversation with a 400 ValidationException as Bedrock does (the product leaves validation to Bedrock).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MIN_CACHE_TOKENS = 1024
CACHE_TTL_SECONDS = 300
LOOKBACK_BLOCKS = 20  # Claude's cache checks this many blocks before each cache point
# Claude Sonnet on Bedrock, USD per million tokens (the product's defaults).
PRICES = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
CONVERSE_PATH = re.compile(r"/model/[^/]+/converse")


def tokens_of(value: Any) -> int:
    return max(1, len(json.dumps(value, sort_keys=True, separators=(",", ":"))) // 4)


@dataclass
class Bill:
    requests: int = 0
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    uncached_input: int = 0  # what the same requests would cost without any cache point
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usd(self) -> float:
        return sum(getattr(self, kind) * price for kind, price in PRICES.items()) / 1_000_000

    def usd_uncached(self) -> float:
        return (self.uncached_input * PRICES["input"] + self.output * PRICES["output"]) / 1_000_000


def invalid(body: bytes) -> str:
    """What Bedrock's own validation would refuse in a Converse request, the way it says it; "" if nothing. The
    product leaves request validation to Bedrock (botocore's is off), so the stand-in checks what a turn sends."""
    try:
        request = json.loads(body)
    except ValueError:
        return "Malformed input request, please reformat your input and try again."
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null"
    for n, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant") or not isinstance(message.get("content"), list):
            return f"1 validation error detected: Value at 'messages.{n + 1}.member' failed to satisfy constraint"
        if n and message["role"] == messages[n - 1]["role"]:
            return "A conversation must alternate between user and assistant roles."
    if messages[0]["role"] != "user":
        return "A conversation must start with a user message."
    for tool in (request.get("toolConfig") or {}).get("tools") or []:
        if "toolSpec" not in tool and "cachePoint" not in tool:
            return "The tool configuration is invalid: each tool needs a toolSpec."
    return ""


class ConverseStandIn:
    def __init__(
        self, *, latency: float, calls: int, tool: str, tool_args: dict[str, Any], write_at: int | None = None,
        write: tuple[str, dict[str, Any]] = ("", {}),
    ) -> None:  # fmt: skip
        self.latency, self.calls, self.tool, self.tool_args = latency, calls, tool, tool_args
        # The call numbered write_at (from 0) is `write` (a tool and its arguments) instead of the read.
        self.write_at, self.write = write_at, write
        self.bill = Bill()
        self._cache: dict[str, float] = {}
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._server: asyncio.AbstractServer | None = None

        async def serve() -> None:
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
            started.set()

        self._thread = threading.Thread(target=self._run, args=(serve,), name="converse-standin", daemon=True)
        self._thread.start()
        started.wait()
        assert self._server is not None
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _run(self, serve: Any) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One keep-alive connection of botocore's pool: requests one after another until the client closes it."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                error_type = ""
                if method != "POST" or not CONVERSE_PATH.fullmatch(path):
                    status, payload = "404 Not Found", {"message": f"No route for {method} {path}"}
                    error_type = "UnknownOperationException"
                elif problem := invalid(body):
                    status, payload, error_type = "400 Bad Request", {"message": problem}, "ValidationException"
                else:
                    await asyncio.sleep(self.latency)
                    status, payload = "200 OK", self.answer(json.loads(body))
                data = json.dumps(payload).encode()
                error = f"x-amzn-ErrorType: {error_type}\r\n" if error_type else ""
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    f"x-amzn-RequestId: {uuid.uuid4()}\r\n{error}\r\n".encode()
                    + data
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except asyncio.CancelledError:
            return  # closing the stand-in (a cancelled task would make asyncio's server callback log an error)
        finally:
            writer.close()

    def _segments(self, request: dict[str, Any]) -> list[Any]:
        """The prompt in cache order: tools, system, then each message's blocks (with its role)."""
        segments: list[Any] = list((request.get("toolConfig") or {}).get("tools") or [])
        segments += list(request.get("system") or [])
        for message in request.get("messages") or []:
            segments.append({"role": message["role"]})
            segments += list(message.get("content") or [])
        return segments

    def _usage(self, request: dict[str, Any]) -> dict[str, int]:
        digest = hashlib.sha256()
        total = 0
        prefixes: list[tuple[str, int]] = []  # (hash, tokens) of the prompt up to each block
        points: list[int] = []  # positions in prefixes closed by a cachePoint
        for segment in self._segments(request):
            if isinstance(segment, dict) and "cachePoint" in segment:
                if prefixes and prefixes[-1][1] >= MIN_CACHE_TOKENS:
                    points.append(len(prefixes) - 1)
                continue
            total += tokens_of(segment)
            digest.update(json.dumps(segment, sort_keys=True).encode())
            prefixes.append((digest.hexdigest(), total))
        now = time.monotonic()
        with self.bill.lock:
            # Each cache point also finds a prefix cached at any of the LOOKBACK_BLOCKS blocks before it.
            read = max(
                (prefixes[i][1] for p in points for i in range(max(0, p - LOOKBACK_BLOCKS), p + 1)
                 if self._cache.get(prefixes[i][0], 0) > now),
                default=0,
            )  # fmt: skip
            marked = max((prefixes[p][1] for p in points), default=0)
            for p in points:
                self._cache[prefixes[p][0]] = now + CACHE_TTL_SECONDS
        write = max(0, marked - read)
        return {"read": read, "write": write, "input": total - read - write, "total": total}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        results = sum(
            1 for m in request.get("messages") or [] for block in m.get("content") or [] if "toolResult" in block
        )
        if results < self.calls:
            tool, args = self.write if results == self.write_at else (self.tool, self.tool_args)
            content = [
                {"text": f"Looking further (step {results + 1})."},
                {"toolUse": {"toolUseId": f"tu-{results}-{time.monotonic_ns()}", "name": tool, "input": args}},
            ]
            stop = "tool_use"
        else:
            content, stop = [{"text": "The cache was reset and the dashboard is current again."}], "end_turn"
        usage = self._usage(request)
        output = tokens_of(content)
        with self.bill.lock:
            self.bill.requests += 1
            self.bill.input += usage["input"]
            self.bill.cache_read += usage["read"]
            self.bill.cache_write += usage["write"]
            self.bill.output += output
            self.bill.uncached_input += usage["total"]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {
                "inputTokens": usage["input"],
                "outputTokens": output,
                "cacheReadInputTokens": usage["read"],
                "cacheWriteInputTokens": usage["write"],
                "totalTokens": usage["total"] + output,
            },
            "metrics": {"latencyMs": int(self.latency * 1000)},
        }
