"""A stand-in of the Zendesk Support API on 127.0.0.1: tickets, their comments (cursor pagination, side-loaded
authors), users, organizations and ticket fields, and ticket updates that add comments the way Zendesk does (an
audit with a Comment event). It records every request; faults are scripted with answer() as on any StandIn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.http_standin import RecordedRequest, StandIn, serve

API_USER = {"id": 5000, "name": "Agent Console API", "email": "agent@example.com", "role": "admin"}


class ZendeskStandIn(StandIn):
    def __init__(self) -> None:
        super().__init__()
        self.tickets: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.users: dict[str, dict[str, Any]] = {str(API_USER["id"]): dict(API_USER)}
        self.organizations: dict[str, dict[str, Any]] = {}
        self.ticket_fields: list[dict[str, Any]] = []
        self.page_size: int | None = None  # cap page[size], to see several pages with few comments
        self.lose_next_put_answer = 0.0  # seconds to sleep after a PUT is applied: the answer arrives too late
        self.next_comment_id = 9_000_000
        self._lock = threading.Lock()

    # --- setup helpers --------------------------------------------------------------------------------------------

    def add_ticket(self, ticket_id: str | int, **fields: Any) -> dict[str, Any]:
        ticket = {
            "id": int(ticket_id),
            "subject": "Locked out",
            "description": "I cannot log in.",
            "status": "open",
            "priority": "high",
            "tags": [],
            "requester_id": None,
            "organization_id": None,
            "group_id": None,
            "custom_fields": [],
            "updated_at": "2026-11-23T10:00:00Z",
            **fields,
        }
        self.tickets[str(ticket_id)] = ticket
        self.comments.setdefault(str(ticket_id), [])
        return ticket

    def add_user(self, user_id: int, **fields: Any) -> dict[str, Any]:
        user = {"id": user_id, "role": "end-user", "locale": "en-US", "user_fields": {}, **fields}
        self.users[str(user_id)] = user
        return user

    def add_comment(self, ticket_id: str | int, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self.next_comment_id += 1
            comment = {
                "id": self.next_comment_id,
                "type": "Comment",
                "body": "",
                "public": True,
                "attachments": [],
                "via": {"channel": "web"},
                "created_at": "2026-11-23T10:05:00Z",
                **fields,
            }
            self.comments[str(ticket_id)].append(comment)
        return comment

    # --- what the tests read --------------------------------------------------------------------------------------

    def paths(self) -> list[str]:
        """Method and path with the query decoded, e.g. 'GET /api/v2/tickets/1/comments.json?page[size]=100'."""
        out = []
        for request in self.requests:
            split = urlsplit(request.path)
            query = "&".join(f"{k}={v[0]}" for k, v in parse_qs(split.query).items())
            out.append(f"{request.method} {split.path}{'?' + query if query else ''}")
        return out

    def puts(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "PUT"]

    # --- the API --------------------------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        if self.script:  # a scripted fault (429, 503, ...) answers instead of the API, as on any StandIn
            super().handle(handler)
            return
        length = int(handler.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length),
        )
        self.requests.append(request)
        split = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        status, body, delay = self._route(handler.command, split.path, query, request)
        time.sleep(delay)
        raw = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method: str, path: str, query: dict[str, str], request: RecordedRequest) -> tuple[int, Any, float]:
        parts = path.removeprefix("/api/v2/").removesuffix(".json").split("/")
        not_found = (404, {"error": "RecordNotFound", "description": "Not found"}, 0.0)
        if parts[0] == "tickets" and len(parts) == 2:
            ticket = self.tickets.get(parts[1])
            if ticket is None:
                return not_found
            if method == "PUT":
                return self._update(ticket, request.json().get("ticket", {}))
            body: dict[str, Any] = {"ticket": ticket}
            if "users" in query.get("include", ""):
                body["users"] = [u for k, u in self.users.items() if k == str(ticket.get("requester_id"))]
            if "organizations" in query.get("include", ""):
                body["organizations"] = [
                    o for k, o in self.organizations.items() if k == str(ticket.get("organization_id"))
                ]
            return 200, body, 0.0
        if parts[0] == "tickets" and len(parts) == 3 and parts[2] == "comments":
            if parts[1] not in self.tickets:
                return not_found
            comments = list(self.comments[parts[1]])
            if query.get("sort_order") == "desc":
                comments.reverse()
            page, meta = self._page(comments, query)
            authors = {str(c.get("author_id")) for c in page}
            body = {"comments": page, "meta": meta, "links": {"next": "https://elsewhere.invalid/steal"}}
            if "users" in query.get("include", ""):
                body["users"] = [u for k, u in self.users.items() if k in authors]
            return 200, body, 0.0
        if parts[0] == "tickets" and len(parts) == 3 and parts[2] == "tags" and method == "PUT":
            ticket = self.tickets[parts[1]]
            ticket["tags"] = sorted(set(ticket["tags"]) | set(request.json().get("tags", [])))
            return 200, {"tags": ticket["tags"]}, 0.0
        if parts[0] == "users" and len(parts) == 2 and parts[1] in self.users:
            return 200, {"user": self.users[parts[1]]}, 0.0
        if parts[0] == "organizations" and len(parts) == 2 and parts[1] in self.organizations:
            return 200, {"organization": self.organizations[parts[1]]}, 0.0
        if parts == ["ticket_fields"]:
            page, meta = self._page(self.ticket_fields, query)
            return 200, {"ticket_fields": page, "meta": meta}, 0.0
        return not_found

    def _page(self, items: list[dict], query: dict[str, str]) -> tuple[list[dict], dict[str, Any]]:
        size = int(query.get("page[size]", "100"))
        if self.page_size:
            size = min(size, self.page_size)
        start = int(query.get("page[after]", "c0")[1:])
        page = items[start : start + size]
        more = start + size < len(items)
        return page, {"has_more": more, "after_cursor": f"c{start + size}" if more else None, "before_cursor": None}

    def _update(self, ticket: dict[str, Any], fields: dict[str, Any]) -> tuple[int, Any, float]:
        events: list[dict[str, Any]] = []
        comment = fields.get("comment")
        if isinstance(comment, dict):
            created = self.add_comment(
                ticket["id"],
                body=comment.get("body", ""),
                public=bool(comment.get("public", True)),
                author_id=API_USER["id"],
                via={"channel": "api"},
            )
            events.append({"id": created["id"], "type": "Comment", "author_id": API_USER["id"], "body": created["body"],
                           "public": created["public"]})  # fmt: skip
        for key in ("group_id", "status"):
            if key in fields:
                ticket[key] = fields[key]
                events.append({"id": len(events) + 1, "type": "Change", "field_name": key, "value": fields[key]})
        ticket["updated_at"] = "2026-11-23T11:00:00Z"
        delay, self.lose_next_put_answer = self.lose_next_put_answer, 0.0
        return 200, {"ticket": ticket, "audit": {"id": 1, "author_id": API_USER["id"], "events": events}}, delay


def serve_zendesk() -> Iterator[ZendeskStandIn]:
    yield from serve(ZendeskStandIn())
