"""What arrives from Zendesk: signature verification and the event-subscription payload schema.

Zendesk signs `timestamp + raw body` with HMAC-SHA256 and sends base64 of the digest. The signing secret is
used as the literal string it is shown as (it looks like base64 but is never decoded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from agentconsole import jsonlimits
from agentconsole.errors import ApplicationError, NotAuthenticated

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"

SIGNATURE_MISSING = "Missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp header."
SIGNATURE_INVALID = "The webhook signature does not match."
SECRET_NOT_CONFIGURED = "ZENDESK_WEBHOOK_SECRET is not configured; refusing unsigned webhooks."  # noqa: S105 - a message, not a secret
TIMESTAMP_MALFORMED = "The signature timestamp is not an ISO 8601 time with a timezone."
TIMESTAMP_STALE = "The signature timestamp is too far from now (replayed or delayed request)."
BODY_NOT_JSON = jsonlimits.BODY_NOT_JSON
BODY_UNSAFE = jsonlimits.BODY_UNSAFE
BODY_WRONG_SHAPE = "The body is not a Zendesk event of the expected shape."

EVENT_TICKET_CREATED = "zen:event-type:ticket.created"
EVENT_COMMENT_ADDED = "zen:event-type:ticket.comment_added"
# Events that carry the ticket's current state in `detail`; we apply it and start no run.
TICKET_UPDATE_EVENTS = frozenset(
    f"zen:event-type:ticket.{name}"
    for name in (
        "status_changed",
        "priority_changed",
        "group_assignment_changed",
        "tags_changed",
        "subject_changed",
        "description_changed",
        "organization_changed",
        "requester_changed",
    )
)


class SignatureError(NotAuthenticated):
    pass


class PayloadError(ApplicationError):
    status_code = 400


def compute_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(
    *, secret: str, timestamp: str | None, signature: str | None, body: bytes, now: datetime, max_skew: timedelta
) -> None:
    """Raise SignatureError unless the request is signed with secret at a time close to now."""
    if not secret:
        raise SignatureError(SECRET_NOT_CONFIGURED)
    if not timestamp or not signature:
        raise SignatureError(SIGNATURE_MISSING)
    expected = compute_signature(secret=secret, timestamp=timestamp, body=body)
    # Compare before looking at the clock so a bad signature never reveals timing of the skew check.
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError(SIGNATURE_INVALID)
    try:
        signed_at = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(TIMESTAMP_MALFORMED) from None
    if signed_at.tzinfo is None:
        raise SignatureError(TIMESTAMP_MALFORMED)
    if abs(now - signed_at) > max_skew:
        raise SignatureError(TIMESTAMP_STALE)


def _as_id(value: Any) -> str:
    """Zendesk sends ids as numbers or strings; "0" and null mean "none"."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("must be an id (a string or an integer)")
    text = str(value).strip()
    if len(text) > 64:
        raise ValueError("is longer than 64 characters")
    return "" if text == "0" else text


def _as_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _or_empty(value: Any) -> Any:
    return "" if value is None else value


# The range of times we accept from a helpdesk. Outside it a timestamp is a bug or an attack, and near the ends of
# Python's own range converting it to UTC overflows.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
SUBJECT_MAX_CHARS = 500


def _aware_in_range(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a timezone (e.g. 2026-11-23T10:00:00Z)")
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError(f"must be between {EARLIEST_TIME.year} and {LATEST_TIME.year}")
    return value.astimezone(UTC)


def _truncate_subject(value: str | None) -> str | None:
    # A subject longer than we keep is still the customer's ticket: keep its start (raw_payload keeps all of it).
    if value is not None and len(value) > SUBJECT_MAX_CHARS:
        return value[: SUBJECT_MAX_CHARS - 1] + "\u2026"
    return value


ExternalId = Annotated[str, BeforeValidator(_as_id)]
AwareTime = Annotated[datetime, AfterValidator(_aware_in_range)]
TicketStatusIn = Literal["new", "open", "pending", "hold", "solved", "closed"]
TicketPriorityIn = Literal["low", "normal", "high", "urgent"]


class TicketDetail(BaseModel):
    """The ticket snapshot in `detail`. Zendesk sends null for any value a ticket does not have."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[ExternalId, Field(min_length=1)]
    subject: Annotated[str | None, AfterValidator(_truncate_subject)] = None
    description: str | None = None
    requester_id: ExternalId = ""
    organization_id: ExternalId = ""
    group_id: ExternalId = ""
    status: Annotated[TicketStatusIn | None, BeforeValidator(_as_lower)] = None
    priority: Annotated[TicketPriorityIn | None, BeforeValidator(_as_lower)] = None
    tags: list[Annotated[str, Field(max_length=200)]] | None = None
    created_at: AwareTime | None = None
    updated_at: AwareTime | None = None


class CommentAuthor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ExternalId = ""
    is_staff: Annotated[bool, BeforeValidator(lambda v: False if v is None else v)] = False


def _default_author(value: Any) -> Any:
    return {} if value is None else value


class Comment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[ExternalId, Field(min_length=1)]
    body: Annotated[str, BeforeValidator(_or_empty)]
    # Public unless Zendesk says otherwise would be the wrong default for a note: a missing value is private.
    is_public: Annotated[bool, BeforeValidator(lambda v: False if v is None else v)]
    author: Annotated[CommentAuthor, BeforeValidator(_default_author)] = CommentAuthor()


class CommentEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    comment: Comment


def _or_empty_dict(value: Any) -> Any:
    return {} if value is None else value


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, Field(min_length=1, max_length=128)]
    type: Annotated[str, Field(min_length=1, max_length=128)]
    account_id: ExternalId = ""
    subject: Annotated[str, BeforeValidator(_or_empty)] = ""
    time: AwareTime | None = None
    detail: Annotated[dict[str, Any], BeforeValidator(_or_empty_dict)] = Field(default_factory=dict)
    event: Annotated[dict[str, Any], BeforeValidator(_or_empty_dict)] = Field(default_factory=dict)


class ParsedEvent(BaseModel):
    envelope: Envelope
    ticket: TicketDetail | None = None
    comment: Comment | None = None
    raw: dict[str, Any]

    @property
    def is_ticket_event(self) -> bool:
        return self.ticket is not None


def _errors(exc: ValidationError, prefix: str) -> list[dict[str, str]]:
    return [
        {"field": ".".join([prefix, *map(str, err["loc"])]).strip("."), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def parse_event(body: bytes) -> ParsedEvent:
    """Parse and validate everything up front, so nothing is stored for a payload we would reject: the JSON
    parser has limits (depth, numbers, NUL, lone surrogates), then each field its own."""
    return parse_event_data(jsonlimits.loads(body))


def parse_event_data(raw: Any) -> ParsedEvent:
    """parse_event for a body already decoded (a stored event, read back by the worker that applies it)."""
    if not isinstance(raw, dict):
        raise PayloadError(BODY_WRONG_SHAPE, extra={"errors": [{"field": "", "message": "expected an object"}]})
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise PayloadError(BODY_WRONG_SHAPE, extra={"errors": _errors(exc, "")}) from None
    handled = envelope.type in TICKET_UPDATE_EVENTS or envelope.type in (EVENT_TICKET_CREATED, EVENT_COMMENT_ADDED)
    if not handled:
        return ParsedEvent.model_construct(envelope=envelope, raw=raw)
    try:
        ticket = TicketDetail.model_validate(envelope.detail)
    except ValidationError as exc:
        raise PayloadError(BODY_WRONG_SHAPE, extra={"errors": _errors(exc, "detail")}) from None
    comment = None
    if envelope.type == EVENT_COMMENT_ADDED:
        try:
            comment = CommentEvent.model_validate(envelope.event).comment
        except ValidationError as exc:
            raise PayloadError(BODY_WRONG_SHAPE, extra={"errors": _errors(exc, "event")}) from None
    # Its parts are validated above: constructing it validated them again (and copied raw).
    return ParsedEvent.model_construct(envelope=envelope, ticket=ticket, comment=comment, raw=raw)
