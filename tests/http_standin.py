"""A real HTTP server on 127.0.0.1 that records requests and answers from a script: the boundary of an external
system (Zendesk, an Admin API) without faking our own client code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class StandIn:
    url: str
    requests: list[RecordedRequest] = field(default_factory=list)
    responses: list[tuple[int, dict, dict[str, str]]] = field(default_factory=list)

    def answer(self, status: int = 200, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        """Queue the next response; with none queued the stand-in answers 200 {}."""
        self.responses.append((status, body or {}, headers or {}))


def serve() -> Iterator[StandIn]:
    server: ThreadingHTTPServer
    standin: StandIn

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            standin.requests.append(
                RecordedRequest(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            status, body, headers = standin.responses.pop(0) if standin.responses else (200, {}, {})
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    standin = StandIn(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
