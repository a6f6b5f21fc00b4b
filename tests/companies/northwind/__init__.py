"""Northwind Seats, a second company for the tests: its own small HTTP Admin API on loopback, with paths, field
names, an API-key header and an idempotency header of its own, described by its own OpenAPI document and
connected to the console by configuration only (openapi.yaml + contracts.yaml + settings)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OPENAPI = HERE / "openapi.yaml"
CONTRACTS = HERE / "contracts.yaml"
PICKED = ("raiseSeatCap", "getUsage")
API_KEY = "nw-test-key"
KEY_HEADER = "X-Northwind-Key"
PREFIX = "/api/v2"


@dataclass
class Account:
    account_ref: str
    display_name: str
    seat_cap: int
    seats_in_use: int
    changed_at: str | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Northwind:
    """The company's state and its switches. `swallow`: writes answer 200 and change nothing."""

    accounts: dict[str, Account] = field(default_factory=dict)
    swallow: bool = False
    requests: list[Recorded] = field(default_factory=list)
    replays: dict[str, tuple[int, dict]] = field(default_factory=dict)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def account(self, ref: str) -> Account | None:
        return self.accounts.get(ref)


def _problem(status: int, title: str) -> tuple[int, dict]:
    return status, {"type": "about:blank", "title": title, "status": status}


def _handle(company: Northwind, method: str, path: str, query: dict[str, str], headers: dict[str, str],
            body: Any) -> tuple[int, dict]:  # fmt: skip
    if headers.get(KEY_HEADER.lower()) != API_KEY:
        return _problem(401, "A valid X-Northwind-Key is required")
    match = re.fullmatch(rf"{PREFIX}/accounts/([^/]+)(/usage|/seat-cap:raise)?", path)
    if match is None:
        return _problem(404, "No such path")
    account = company.account(match.group(1))
    if account is None:
        return _problem(404, f"No account {match.group(1)}")
    suffix = match.group(2) or ""
    if method == "GET" and suffix == "":
        return 200, account.__dict__.copy()
    if method == "GET" and suffix == "/usage":
        days = int(query.get("days", "7"))
        return 200, {"account_ref": account.account_ref, "days": days, "logins": 40 * days,
                     "peak_seats": account.seats_in_use}  # fmt: skip
    if method == "POST" and suffix == "/seat-cap:raise":
        if not isinstance(body, dict) or not isinstance(body.get("extra_seats"), int) or not body.get("ticket_ref"):
            return _problem(422, "extra_seats (integer) and ticket_ref are required")
        previous = account.seat_cap
        answer = {"account_ref": account.account_ref, "seat_cap": previous + body["extra_seats"],
                  "previous_seat_cap": previous}  # fmt: skip
        if not company.swallow:
            account.seat_cap = answer["seat_cap"]
            account.changed_at = datetime.now(UTC).isoformat()
        return 200, answer
    return _problem(405, "Method not allowed")


def serve(company: Northwind) -> Iterator[Northwind]:
    """Run the company's Admin API on a loopback port until the generator is closed."""

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            path, _, raw_query = self.path.partition("?")
            query = dict(pair.split("=", 1) for pair in raw_query.split("&") if "=" in pair)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            with company.lock:
                company.requests.append(Recorded(self.command, self.path, headers, body))
                token = headers.get("idempotency-token")
                replay = company.replays.get(token) if token and self.command == "POST" else None
                if replay is not None:
                    status, payload = replay
                else:
                    status, payload = _handle(company, self.command, path, query, headers, body)
                    if token and self.command == "POST" and status < 500:
                        company.replays[token] = (status, payload)
            data = json.dumps(payload).encode()
            self.send_response(status)
            kind = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if replay is not None:
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    company.url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    try:
        yield company
    finally:
        server.shutdown()
        server.server_close()
