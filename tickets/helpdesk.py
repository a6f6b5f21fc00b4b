"""The helpdesk the agent writes to: Zendesk when configured, otherwise the console's own tickets.

Both implement the same five operations, so the demo and the tests run the same code path offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from django.conf import settings

from agentconsole.errors import ApplicationError
from audit.models import AuditEvent
from tickets.models import Ticket, TicketComment
from tickets.services import ticket_add_tags, ticket_comment_add, ticket_set_group, ticket_set_status

HELPDESK_HTTP_ERROR = "The helpdesk answered HTTP {status}."
HELPDESK_UNREACHABLE = "The helpdesk could not be reached: {error}"


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

    def add_private_note(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult: ...
    def add_public_reply(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult: ...
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

    # Zendesk honours idempotency keys only when creating tickets, not on the update that adds a comment: the key
    # is accepted for the interface's sake. A worker killed between Zendesk's answer and the run recording it can
    # therefore repeat a Zendesk comment; the local helpdesk below cannot.
    def add_private_note(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult:
        # `public: false` is always sent: Zendesk otherwise inherits the ticket's default, which may be public.
        return self._update_ticket(ticket, {"comment": {"body": body, "public": False}}, "add_private_note")

    def add_public_reply(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult:
        return self._update_ticket(ticket, {"comment": {"body": body, "public": True}}, "add_public_reply")

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

    @staticmethod
    def _comment(ticket: Ticket, body: str, *, public: bool, idempotency_key: str) -> TicketComment:
        # The key is the proposed action's: a run resumed after a crash between posting and recording the post
        # finds its comment instead of posting it twice (the comment's external id is unique per ticket).
        key = idempotency_key[:64]
        existing = ticket.comments.filter(external_id=key).first() if key else None
        if existing is not None:
            return existing
        return ticket_comment_add(
            ticket=ticket, body=body, public=public, author_kind=TicketComment.AuthorKind.AGENT, external_id=key
        )

    def add_private_note(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult:
        comment = self._comment(ticket, body, public=False, idempotency_key=idempotency_key)
        return HelpdeskResult(self.name, "add_private_note", {"comment_id": comment.pk})

    def add_public_reply(self, ticket: Ticket, body: str, *, idempotency_key: str = "") -> HelpdeskResult:
        comment = self._comment(ticket, body, public=True, idempotency_key=idempotency_key)
        return HelpdeskResult(self.name, "add_public_reply", {"comment_id": comment.pk})

    def set_group(self, ticket: Ticket, group_id: str) -> HelpdeskResult:
        ticket = ticket_set_group(ticket=ticket, group_id=group_id, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_group", {"group_id": ticket.group_id})

    def add_tags(self, ticket: Ticket, tags: list[str]) -> HelpdeskResult:
        ticket = ticket_add_tags(ticket=ticket, tags=tags)
        return HelpdeskResult(self.name, "add_tags", {"tags": ticket.tags})

    def set_solved(self, ticket: Ticket) -> HelpdeskResult:
        ticket = ticket_set_status(ticket=ticket, status=Ticket.Status.SOLVED, actor_kind=AuditEvent.ActorKind.AGENT)
        return HelpdeskResult(self.name, "set_solved", {"status": ticket.status})


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
