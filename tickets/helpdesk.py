"""The helpdesk the agent writes to: Zendesk when configured, otherwise the console's own tickets.

Both implement the same five operations, so the demo and the tests run the same code path offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from django.conf import settings

from agentconsole.errors import ApplicationError
from audit.models import AuditEvent
from tickets.models import Ticket, TicketComment
from tickets.services import ticket_add_tags, ticket_comment_add, ticket_set_group, ticket_set_status

HELPDESK_HTTP_ERROR = "The helpdesk answered HTTP {status}."
HELPDESK_UNREACHABLE = "The helpdesk could not be reached: {error}"
# Comments the console writes carry a marker, so a comment whose sending was interrupted (a crash, a timeout) can be
# found again instead of being posted twice: the local helpdesk keeps it as the comment's external id (unique per
# ticket); Zendesk keeps it in the update's audit metadata (metadata.custom on the comment), and a comment with the
# same text and visibility posted since the attempt began counts too, for accounts that do not return it.
MARKER_KEY = "agent_console_marker"
RECENT_COMMENTS = 100


class HelpdeskError(ApplicationError):
    status_code = 502

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message, extra={"retryable": retryable, "status": status})
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class HelpdeskResult:
    backend: str
    operation: str
    data: dict[str, Any]


class Helpdesk(Protocol):
    name: str

    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult: ...
    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult: ...
    def find_comment(
        self, ticket: Ticket, *, marker: str, body: str, public: bool, since: datetime
    ) -> dict[str, Any] | None: ...
    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult: ...
    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult: ...
    def set_solved(self, ticket: Ticket) -> HelpdeskResult: ...


class ZendeskHelpdesk:
    """Zendesk Support REST API v2 with API-token basic auth."""

    name = "zendesk"

    def __init__(
        self, *, base_url: str, email: str, api_token: str, timeout: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        # One client per call, closed after it: helpdesk_for() builds a helpdesk per operation, so a client kept
        # on the instance would leave its connection pool open until garbage collection.
        self._client_options = {
            "base_url": base_url.rstrip("/"),
            "auth": (f"{email}/token", api_token),
            "timeout": timeout,
            "transport": transport,
            "headers": {"Accept": "application/json"},
        }

    def _send(self, method: str, path: str, body: dict[str, Any], operation: str) -> HelpdeskResult:
        try:
            with httpx.Client(**self._client_options) as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise HelpdeskError(HELPDESK_UNREACHABLE.format(error=exc), retryable=True) from exc
        if response.status_code >= 400:
            raise HelpdeskError(
                HELPDESK_HTTP_ERROR.format(status=response.status_code),
                retryable=response.status_code == 429 or response.status_code >= 500,
                status=response.status_code,
            )
        try:
            data = response.json()
        except ValueError:
            data = {}
        return HelpdeskResult(backend=self.name, operation=operation, data=data if isinstance(data, dict) else {})

    def _update_ticket(self, ticket: Ticket, fields: dict[str, Any], operation: str) -> HelpdeskResult:
        return self._send("PUT", f"/api/v2/tickets/{ticket.external_id}.json", {"ticket": fields}, operation)

    def _comment(self, ticket: Ticket, body: str, public: bool, marker: str, operation: str) -> HelpdeskResult:
        fields: dict[str, Any] = {"comment": {"body": body, "public": public}}
        if marker:
            fields["metadata"] = {MARKER_KEY: marker}  # stored as the audit's (and comment's) metadata.custom
        return self._update_ticket(ticket, fields, operation)

    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        # `public: false` is always sent: Zendesk otherwise inherits the ticket's default, which may be public.
        return self._comment(ticket, body, False, marker, "add_private_note")

    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._comment(ticket, body, True, marker, "add_public_reply")

    def find_comment(
        self, ticket: Ticket, *, marker: str, body: str, public: bool, since: datetime
    ) -> dict[str, Any] | None:
        """The ticket's comment carrying `marker` among its most recent ones, or None. Raises HelpdeskError."""
        path = f"/api/v2/tickets/{ticket.external_id}/comments.json"
        try:
            with httpx.Client(**self._client_options) as client:
                response = client.get(path, params={"sort_order": "desc", "page[size]": RECENT_COMMENTS})
        except httpx.HTTPError as exc:
            raise HelpdeskError(HELPDESK_UNREACHABLE.format(error=exc), retryable=True) from exc
        if response.status_code >= 400:
            raise HelpdeskError(
                HELPDESK_HTTP_ERROR.format(status=response.status_code),
                retryable=response.status_code == 429 or response.status_code >= 500,
                status=response.status_code,
            )
        try:
            comments = response.json().get("comments") or []
        except (ValueError, AttributeError) as exc:
            raise HelpdeskError(HELPDESK_HTTP_ERROR.format(status=response.status_code), retryable=True) from exc
        wanted = " ".join(body.split())
        for comment in comments:
            if not isinstance(comment, dict):
                continue
            custom = (comment.get("metadata") or {}).get("custom") or {}
            if isinstance(custom, dict) and custom.get(MARKER_KEY) == marker:
                return comment
            created = _parse_time(comment.get("created_at"))
            if (
                bool(comment.get("public")) == public
                and " ".join(str(comment.get("body") or "").split()) == wanted
                and created is not None
                and created >= since - CLOCK_SKEW
            ):
                return comment
        return None

    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult:
        value: int | str = int(group_id) if group_id.isdigit() else group_id
        return self._update_ticket(ticket, {"group_id": value}, "set_group")

    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult:
        # PUT on the tags endpoint adds; POST would replace every tag on the ticket.
        return self._send("PUT", f"/api/v2/tickets/{ticket.external_id}/tags.json", {"tags": tags}, "add_tags")

    def set_solved(self, ticket: Ticket) -> HelpdeskResult:
        return self._update_ticket(ticket, {"status": "solved"}, "set_solved")


class LocalHelpdesk:
    """The console's own tickets, for the demo and for tickets that did not come from Zendesk."""

    name = "local"

    def _comment(self, ticket: Ticket, body: str, public: bool, marker: str, operation: str) -> HelpdeskResult:
        existing = TicketComment.objects.filter(ticket=ticket, external_id=marker).first() if marker else None
        comment = existing or ticket_comment_add(
            ticket=ticket, body=body, public=public, author_kind=TicketComment.AuthorKind.AGENT, external_id=marker
        )
        return HelpdeskResult(self.name, operation, {"comment_id": comment.pk})

    def add_private_note(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._comment(ticket, body, False, marker, "add_private_note")

    def add_public_reply(self, ticket: Ticket, body: str, *, marker: str = "") -> HelpdeskResult:
        return self._comment(ticket, body, True, marker, "add_public_reply")

    def find_comment(
        self, ticket: Ticket, *, marker: str, body: str, public: bool, since: datetime
    ) -> dict[str, Any] | None:
        comment = TicketComment.objects.filter(ticket=ticket, external_id=marker).first() if marker else None
        return None if comment is None else {"comment_id": comment.pk, "public": comment.public}

    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult:
        ticket = ticket_set_group(ticket=ticket, group_id=group_id, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_group", {"group_id": ticket.group_id})

    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult:
        ticket = ticket_add_tags(ticket=ticket, tags=tags)
        return HelpdeskResult(self.name, "add_tags", {"tags": ticket.tags})

    def set_solved(self, ticket: Ticket) -> HelpdeskResult:
        ticket = ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_solved", {"status": ticket.status})


CLOCK_SKEW = timedelta(minutes=2)  # between our clock and Zendesk's, when matching a comment by time


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def zendesk_configured() -> bool:
    return bool(settings.ZENDESK_SUBDOMAIN or settings.ZENDESK_API_URL) and bool(
        settings.ZENDESK_EMAIL and settings.ZENDESK_API_TOKEN
    )


def helpdesk_for(ticket: Ticket) -> Helpdesk:
    """Zendesk for Zendesk tickets when credentials are set; the local helpdesk otherwise."""
    if ticket.source == Ticket.Source.ZENDESK and zendesk_configured():
        return ZendeskHelpdesk(
            base_url=settings.ZENDESK_API_URL or f"https://{settings.ZENDESK_SUBDOMAIN}.zendesk.com",
            email=settings.ZENDESK_EMAIL,
            api_token=settings.ZENDESK_API_TOKEN,
            timeout=settings.ZENDESK_TIMEOUT_SECONDS,
        )
    return LocalHelpdesk()
