"""A real HTTP server on 127.0.0.1 that records requests and answers from a script: the boundary of an external
system (Zendesk, the Admin API, Bedrock) without faking any of our own client code."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # sent instead of the JSON of body (a malformed answer)


class StandIn:
    """Answers each request with the next scripted response (or the fallback) and records what it received."""

    def __init__(self, fallback: Scripted | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.script: deque[Scripted] = deque()
        self.fallback = fallback or Scripted(200, {})
        self.url = ""

    def answer(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, *, delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:  # fmt: skip
        self.script.append(Scripted(status, body, headers or {}, delay, raw))

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        self.requests.append(
            RecordedRequest(
                method=handler.command,
                path=handler.path,
                headers={k.lower(): v for k, v in handler.headers.items()},
                body=handler.rfile.read(length),
            )
        )
        scripted = self.script.popleft() if self.script else self.fallback
        time.sleep(scripted.delay)
        raw = scripted.raw if scripted.raw is not None else json.dumps(scripted.body).encode()
        try:
            handler.send_response(scripted.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            for name, value in scripted.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


def serve(stand_in: StandIn | None = None, prefix: str = "") -> Iterator[StandIn]:
    stand_in = stand_in or StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stand_in.handle(self)

        do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
