"""The Zendesk Support REST API (v2): the one module that talks to Zendesk.

Why httpx and not zenpy: httpx is already the project's pinned HTTP client (the Admin API client uses it), and
this module needs exact control that zenpy's object layer hides: bounded cursor pagination that never follows a
host named in a response, a 429 policy that waits out a short Retry-After but hands a long one back to Celery
instead of sleeping a worker for minutes (zenpy sleeps for whatever Zendesk asks), no retry of a comment post
whose outcome is unknown (the caller checks for our marker instead), per-call timeouts, and plain dicts we turn
into our own snapshot. zenpy's cache is per object id per process; ours is per ticket version, in the database.

Reads: the ticket with its requester and organization side-loaded, its comments with their authors, the titles of
its custom fields. Writes: comments, group, tags, status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tickets.snapshot import (
    HELPDESK_BAD_ANSWER,
    HELPDESK_HTTP_ERROR,
    HELPDESK_UNREACHABLE,
    CommentSnapshot,
    HelpdeskError,
    OrganizationSnapshot,
    RequesterSnapshot,
    TicketSnapshot,
)

PAGE_SIZE = 100
_BACKOFF_SECONDS = 0.5
_STAFF_ROLES = frozenset({"agent", "admin"})


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, (parsedate_to_datetime(raw) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    description = body.get("description") or (error.get("message") if isinstance(error, dict) else "")
    title = error.get("title") if isinstance(error, dict) else error
    parts = [str(part) for part in (title, description) if part]
    return f" ({': '.join(parts)[:300]})" if parts else ""


class ZendeskClient:
    """API-token basic auth. Every method returns Zendesk's JSON or raises HelpdeskError saying whether to retry."""

    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        timeout: float,
        max_attempts: int = 3,
        max_retry_after: float = 30,
        max_pages: int = 20,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._options: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "auth": (f"{email}/token", api_token),
            "timeout": timeout,
            "transport": transport,
            "headers": {"Accept": "application/json"},
        }
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.max_pages = max_pages
        self._sleep = sleep
        self._http: httpx.Client | None = None

    @contextmanager
    def session(self) -> Iterator[ZendeskClient]:
        """One connection pool for several calls (a ticket read is 2 to 5), closed at the end: building an httpx
        client (its TLS context) per call costs more than the call on a fast network."""
        if self._http is not None:
            yield self
            return
        with httpx.Client(**self._options) as http:
            self._http = http
            try:
                yield self
            finally:
                self._http = None

    # --- transport ------------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Send one call. 429 is retried after its Retry-After when that is short (it was not carried out); timeouts
        and 5xx are retried only when repeating the call is harmless (`idempotent`)."""
        attempt = 0
        with self.session():
            client = self._http
            assert client is not None
            while True:
                attempt += 1
                last_try = attempt >= self.max_attempts
                try:
                    response = client.request(method, path, params=params, json=json)
                except httpx.HTTPError as exc:
                    if idempotent and not last_try:
                        self._sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
                        continue
                    raise HelpdeskError(HELPDESK_UNREACHABLE.format(error=exc), retryable=True) from exc
                status = response.status_code
                if status == 429:
                    wait = _retry_after(response)
                    delay = wait if wait is not None else _BACKOFF_SECONDS * 2 ** (attempt - 1)
                    if not last_try and delay <= self.max_retry_after:
                        self._sleep(delay)
                        continue
                    raise HelpdeskError(
                        HELPDESK_HTTP_ERROR.format(status=status, detail=_error_detail(response)),
                        retryable=True,
                        status=status,
                        retry_after=delay,
                    )
                if status >= 500 or status == 409:  # 409: the ticket was being updated by another process
                    if (idempotent or status == 409) and not last_try:
                        self._sleep(_retry_after(response) or _BACKOFF_SECONDS * 2 ** (attempt - 1))
                        continue
                    raise HelpdeskError(
                        HELPDESK_HTTP_ERROR.format(status=status, detail=_error_detail(response)),
                        retryable=True,
                        status=status,
                        retry_after=_retry_after(response),
                    )
                if status >= 400:
                    raise HelpdeskError(
                        HELPDESK_HTTP_ERROR.format(status=status, detail=_error_detail(response)),
                        retryable=False,
                        status=status,
                    )
                try:
                    data = response.json() if response.content else {}
                except ValueError:
                    raise HelpdeskError(
                        HELPDESK_BAD_ANSWER.format(problem="the body is not JSON"), retryable=True, status=status
                    ) from None
                if not isinstance(data, dict):
                    raise HelpdeskError(
                        HELPDESK_BAD_ANSWER.format(problem="expected a JSON object"), retryable=True, status=status
                    )
                return data

    def pages(self, path: str, *, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Cursor pagination: page[size] and page[after] from meta.after_cursor, at most max_pages pages. We build
        the next request ourselves rather than follow links.next, so a response can never send our credentials
        to another host."""
        query = {**(params or {}), "page[size]": PAGE_SIZE}
        for _ in range(self.max_pages):
            page = self.request("GET", path, params=query)
            yield page
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            cursor = meta.get("after_cursor")
            if not meta.get("has_more") or not cursor:
                return
            query = {**query, "page[after]": cursor}
        raise _Truncated

    # --- reads ----------------------------------------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/tickets/{ticket_id}.json", params={"include": "users,organizations"})

    def user(self, user_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/users/{user_id}.json")

    def organization(self, organization_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/organizations/{organization_id}.json")

    def comments(self, ticket_id: str, *, newest_first: bool = False) -> tuple[list[dict], dict[str, dict], bool]:
        """Every comment (oldest first) with its authors, and whether the page limit cut the list short."""
        comments: list[dict] = []
        users: dict[str, dict] = {}
        params = {"include": "users"}
        if newest_first:
            params["sort_order"] = "desc"
        truncated = False
        try:
            for page in self.pages(f"/api/v2/tickets/{ticket_id}/comments.json", params=params):
                comments.extend(c for c in page.get("comments") or [] if isinstance(c, dict))
                users.update({str(u.get("id")): u for u in page.get("users") or [] if isinstance(u, dict)})
                if newest_first:
                    break  # the caller wants the recent ones only
        except _Truncated:
            truncated = True
        return comments, users, truncated

    def ticket_field_titles(self) -> dict[str, str]:
        titles: dict[str, str] = {}
        try:
            for page in self.pages("/api/v2/ticket_fields.json"):
                for item in page.get("ticket_fields") or []:
                    if isinstance(item, dict) and item.get("id") is not None:
                        titles[str(item["id"])] = str(item.get("title") or item.get("raw_title") or item["id"])
        except _Truncated:
            pass
        return titles

    # --- writes ---------------------------------------------------------------------------------------------------

    def update_ticket(self, ticket_id: str, fields: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        return self.request("PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": fields}, idempotent=idempotent)

    def add_tags(self, ticket_id: str, tags: list[str]) -> dict[str, Any]:
        # PUT on the tags endpoint adds; POST would replace every tag on the ticket.
        return self.request("PUT", f"/api/v2/tickets/{ticket_id}/tags.json", json={"tags": tags})


class _Truncated(Exception):
    """More pages than max_pages: what was read is kept and flagged."""


# --- From Zendesk's JSON to our snapshot ----------------------------------------------------------------------------


def _id(value: Any) -> str:
    return "" if value is None else str(value)


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _requester(user: dict[str, Any] | None, requester_id: str) -> RequesterSnapshot | None:
    if not requester_id:
        return None
    user = user or {}
    fields = user.get("user_fields")
    return RequesterSnapshot(
        external_id=requester_id,
        name=str(user.get("name") or ""),
        email=str(user.get("email") or ""),
        locale=str(user.get("locale") or ""),
        fields=fields if isinstance(fields, dict) else {},
    )


def _organization(org: dict[str, Any] | None, organization_id: str) -> OrganizationSnapshot | None:
    if not organization_id:
        return None
    org = org or {}
    fields = org.get("organization_fields")
    return OrganizationSnapshot(
        external_id=organization_id,
        name=str(org.get("name") or ""),
        org_external_id=_id(org.get("external_id")),
        fields=fields if isinstance(fields, dict) else {},
    )


def comment_snapshot(comment: dict[str, Any], users: dict[str, dict]) -> CommentSnapshot:
    author = users.get(_id(comment.get("author_id"))) or {}
    via = comment.get("via") if isinstance(comment.get("via"), dict) else {}
    body = comment.get("plain_body") if isinstance(comment.get("plain_body"), str) else comment.get("body")
    return CommentSnapshot(
        external_id=_id(comment.get("id")),
        body=str(body or ""),
        public=bool(comment.get("public")),
        author_id=_id(comment.get("author_id")),
        author_name=str(author.get("name") or ""),
        author_is_staff=str(author.get("role") or "") in _STAFF_ROLES,
        via_api=via.get("channel") == "api",
        attachments=[
            str(a.get("file_name"))
            for a in comment.get("attachments") or []
            if isinstance(a, dict) and a.get("file_name")
        ],
        created_at=_when(comment.get("created_at")),
    )


def _gone_is_empty(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A deleted user or organization (404) leaves the snapshot without it instead of failing the whole read."""
    try:
        return read()
    except HelpdeskError as exc:
        if exc.status == 404:
            return {}
        raise


def ticket_snapshot_read(client: ZendeskClient, ticket_id: str) -> TicketSnapshot:
    """Read everything the agent needs about one ticket: 2 to 5 calls (the ticket with its requester and
    organization side-loaded, its comments page by page, and the custom field titles when it has any)."""
    with client.session():
        return _snapshot_read(client, ticket_id)


def _snapshot_read(client: ZendeskClient, ticket_id: str) -> TicketSnapshot:
    data = client.ticket(ticket_id)
    ticket = data.get("ticket")
    if not isinstance(ticket, dict):
        raise HelpdeskError(HELPDESK_BAD_ANSWER.format(problem='no "ticket" object'), retryable=False)
    users = {_id(u.get("id")): u for u in data.get("users") or [] if isinstance(u, dict)}
    orgs = {_id(o.get("id")): o for o in data.get("organizations") or [] if isinstance(o, dict)}
    requester_id = _id(ticket.get("requester_id"))
    organization_id = _id(ticket.get("organization_id"))
    requester = users.get(requester_id)
    if requester_id and requester is None:
        requester = _gone_is_empty(lambda: client.user(requester_id)).get("user")
    organization = orgs.get(organization_id)
    if organization_id and organization is None:
        organization = _gone_is_empty(lambda: client.organization(organization_id)).get("organization")
    comments, authors, truncated = client.comments(ticket_id)
    authors = {**users, **authors}
    custom = [
        f
        for f in ticket.get("custom_fields") or []
        if isinstance(f, dict) and f.get("value") not in (None, "", [], False)
    ]
    custom_fields: list[dict[str, Any]] = []
    if custom:
        titles = client.ticket_field_titles()
        custom_fields = [
            {"id": _id(f.get("id")), "title": titles.get(_id(f.get("id")), _id(f.get("id"))), "value": f["value"]}
            for f in custom
        ]
    priority = ticket.get("priority")
    return TicketSnapshot(
        external_id=_id(ticket.get("id")) or ticket_id,
        updated_at=_when(ticket.get("updated_at")),
        subject=str(ticket.get("subject") or ticket.get("raw_subject") or ""),
        description=str(ticket.get("description") or ""),
        priority=str(priority).lower() if priority else "",
        tags=[str(t) for t in ticket.get("tags") or []],
        group_id=_id(ticket.get("group_id")),
        requester=_requester(requester, requester_id),
        organization=_organization(organization, organization_id),
        custom_fields=custom_fields,
        comments=[comment_snapshot(c, authors) for c in comments],
        comments_truncated=truncated,
    )
