"""What a helpdesk tells us about a ticket, in one shape whichever helpdesk it is (Zendesk's API or the local one),
and the marker our own comments carry."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentconsole.errors import ApplicationError

HELPDESK_HTTP_ERROR = "The helpdesk answered HTTP {status}{detail}."
HELPDESK_UNREACHABLE = "The helpdesk could not be reached: {error}"
HELPDESK_BAD_ANSWER = "The helpdesk answered in a shape we do not know: {problem}"


class HelpdeskError(ApplicationError):
    """A helpdesk call failed. retryable: try again later; retry_after: how long the helpdesk asked us to wait."""

    status_code = 502

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, extra={"retryable": retryable, "status": status, "retry_after": retry_after})
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    @property
    def ambiguous(self) -> bool:
        """The request may have been carried out before the failure (a timeout, a 5xx): a write may have landed."""
        return self.status is None or self.status >= 500


@dataclass(frozen=True)
class HelpdeskResult:
    backend: str
    operation: str
    data: dict[str, Any]


@dataclass(frozen=True)
class RequesterSnapshot:
    external_id: str
    name: str = ""
    email: str = ""
    locale: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrganizationSnapshot:
    external_id: str  # the helpdesk's organization id
    name: str = ""
    org_external_id: str = ""  # the organization's own "external id" attribute in Zendesk
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommentSnapshot:
    external_id: str
    body: str
    public: bool
    author_id: str = ""
    author_name: str = ""
    author_is_staff: bool = False
    via_api: bool = False
    attachments: list[str] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(frozen=True)
class TicketSnapshot:
    """A ticket as read at one version. None means "this helpdesk did not say": the stored value is kept."""

    external_id: str
    updated_at: datetime | None = None
    subject: str | None = None
    description: str | None = None
    priority: str | None = None
    tags: list[str] | None = None
    group_id: str | None = None
    requester: RequesterSnapshot | None = None
    organization: OrganizationSnapshot | None = None
    custom_fields: list[dict[str, Any]] | None = None
    comments: list[CommentSnapshot] | None = None
    comments_truncated: bool = False


# --- Our marker ---------------------------------------------------------------------------------------------------

MARKER_PREFIX = "ac-"
_MARKER = re.compile(r"\b(ac-[0-9a-f]{12})\b")
# The last line of every comment we post to an external helpdesk: readable, and findable by the marker.
_FOOTER = "\n\n— Agent Console · ref {marker}"
_FOOTER_AT_END = re.compile(r"\n*— Agent Console · ref ac-[0-9a-f]{12}\s*\Z")


def comment_marker(key: str = "") -> str:
    """The marker of one intent to post: the same key (e.g. a proposed action's idempotency key) always gives the
    same marker, so a retry of that intent is recognised; no key gives a fresh one."""
    seed = key or uuid.uuid4().hex
    return MARKER_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:12]


def with_marker(body: str, marker: str) -> str:
    return body.rstrip() + _FOOTER.format(marker=marker)


def marker_in(body: str) -> str:
    """The marker in a comment's body, if any (the last one: ours is the footer)."""
    found = _MARKER.findall(body or "")
    return found[-1] if found else ""


def without_marker(body: str) -> str:
    return _FOOTER_AT_END.sub("", body or "")
