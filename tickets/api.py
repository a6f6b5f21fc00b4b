# No `from __future__ import annotations` here: @paginate wraps the handlers, and ninja then resolves their
# string annotations in ninja's own module namespace, where the filter schemas do not exist.

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from ninja import Path, Query, Router, Status
from ninja.pagination import paginate

from agent.models import AgentRun
from agentconsole.errors import ApplicationError, NotFoundError, PayloadTooLarge
from agentconsole.pagination import BoundedLimitOffsetPagination
from agentconsole.schemas import ONE_ERRORS, READ_ERRORS
from console.auth import api_auth
from tickets.models import Ticket
from tickets.schemas import ErrorOut, TicketDetailOut, TicketFilterIn, TicketOut, WebhookAcceptedOut
from tickets.services import zendesk_event_ingest
from tickets.zendesk_webhook import (
    BODY_WRONG_SHAPE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PayloadError,
    parse_event,
    verify_signature,
)

BODY_TOO_LARGE = "The body is larger than {limit} bytes."
CONTENT_LENGTH_INVALID = "The Content-Length header is not a number."
TICKET_NOT_FOUND = "No ticket {ticket_id}."
PAGE_MAX = 100
MAX_ID = 2**63 - 1  # ids are bigints

# Every route needs a reviewer or an admin (token or session), except the webhook, which proves itself by its
# signature.
router = Router(tags=["tickets"], auth=api_auth)


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """Refuse an oversize body before reading it, and again after in case Content-Length was absent or lied."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApplicationError(CONTENT_LENGTH_INVALID) from None
    if declared > limit:
        raise PayloadTooLarge(BODY_TOO_LARGE.format(limit=limit))
    body = request.body
    if len(body) > limit:
        raise PayloadTooLarge(BODY_TOO_LARGE.format(limit=limit))
    return body


@router.post(
    "/webhooks/zendesk",
    response={202: WebhookAcceptedOut, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut},
    summary="Receive a signed Zendesk ticket event",
    auth=None,
    tags=["webhooks"],
)
def zendesk_webhook(request: HttpRequest) -> Status:
    body = _read_body(request, settings.ZENDESK_WEBHOOK_MAX_BODY_BYTES)
    verify_signature(
        secret=settings.ZENDESK_WEBHOOK_SECRET,
        timestamp=request.headers.get(TIMESTAMP_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        body=body,
        now=timezone.now(),
        max_skew=timedelta(seconds=settings.ZENDESK_WEBHOOK_MAX_SKEW_SECONDS),
    )
    parsed = parse_event(body)
    try:
        result = zendesk_event_ingest(parsed=parsed)
    except DjangoValidationError as exc:
        # The parser's limits should leave nothing for the models to refuse; if they ever do, it is still the
        # sender's input (400, nothing stored: the ingest is one transaction), never our 500.
        raise PayloadError(BODY_WRONG_SHAPE, extra={"errors": _model_errors(exc)}) from None
    return Status(
        202,
        {
            "ticket_id": result.ticket_id,
            "event_id": parsed.envelope.id,
            "duplicate": result.duplicate,
            "handled": result.handled,
            "ignored_reason": result.ignored_reason,
        },
    )


def _model_errors(exc: DjangoValidationError) -> list[dict[str, str]]:
    if hasattr(exc, "error_dict"):
        return [{"field": name, "message": " ".join(messages)} for name, messages in exc.message_dict.items()]
    return [{"field": "", "message": message} for message in exc.messages]


def _ticket_list(*, status: str | None, workflow: str | None) -> QuerySet[Ticket]:
    tickets = Ticket.objects.select_related("tenant_link").order_by("-created_at", "-id")
    if status:
        tickets = tickets.filter(status=status)
    if workflow:
        # A filter on the reverse relation could repeat a ticket with two runs; the subquery cannot.
        tickets = tickets.filter(pk__in=Ticket.objects.filter(runs__workflow__slug=workflow).values("pk"))
    return tickets


@router.get("/tickets", response={200: list[TicketOut], **READ_ERRORS}, summary="Tickets, newest first")
@paginate(BoundedLimitOffsetPagination, max_limit=PAGE_MAX)
def ticket_list(request: HttpRequest, filters: Query[TicketFilterIn]) -> QuerySet[Ticket]:
    return _ticket_list(status=filters.status, workflow=filters.workflow)


@router.get("/tickets/{ticket_id}", response={200: TicketDetailOut, **ONE_ERRORS}, summary="One ticket")
def ticket_get(request: HttpRequest, ticket_id: int = Path(..., ge=1, le=MAX_ID)) -> Ticket:
    ticket = (
        Ticket.objects.select_related("tenant_link")
        .prefetch_related("comments", Prefetch("runs", queryset=AgentRun.objects.only("id", "ticket_id")))
        .filter(pk=ticket_id)
        .first()
    )
    if ticket is None:
        raise NotFoundError(TICKET_NOT_FOUND.format(ticket_id=ticket_id))
    return ticket
