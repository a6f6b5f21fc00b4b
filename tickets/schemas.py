from __future__ import annotations

from ninja import Schema


class WebhookAcceptedOut(Schema):
    ticket_id: int | None
    event_id: str
    duplicate: bool
    handled: bool


class ErrorOut(Schema):
    detail: str
    errors: list[dict[str, str]] | None = None
