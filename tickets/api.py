from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Status

from agentconsole.errors import ApplicationError, PayloadTooLarge
from tickets.schemas import ErrorOut, WebhookAcceptedOut
from tickets.services import zendesk_event_ingest
from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_event, verify_signature

BODY_TOO_LARGE = "The body is larger than {limit} bytes."
CONTENT_LENGTH_INVALID = "The Content-Length header is not a number."

router = Router(tags=["webhooks"])


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
    "/zendesk",
    response={202: WebhookAcceptedOut, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut},
    summary="Receive a signed Zendesk ticket event",
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
    result = zendesk_event_ingest(parsed=parsed)
    return Status(
        202,
        {
            "ticket_id": result.ticket_id,
            "event_id": parsed.envelope.id,
            "duplicate": result.duplicate,
            "handled": result.handled,
        },
    )
