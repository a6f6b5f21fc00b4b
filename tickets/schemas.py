from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema

from tickets.models import Ticket


class WebhookAcceptedOut(Schema):
    ticket_id: int | None
    event_id: str
    duplicate: bool
    handled: bool


class ErrorOut(Schema):
    detail: str
    errors: list[dict[str, str]] | None = None


class TicketFilterIn(Schema):
    status: Ticket.Status | None = None
    workflow: str | None = Field(None, description="A workflow slug: tickets with a run in that workflow.")


class TicketOut(Schema):
    id: int
    source: str
    external_id: str
    subject: str
    status: str
    priority: str
    tags: list[str]
    organization_id: str
    tenant_id: str
    group_id: str
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None


class TicketCommentOut(Schema):
    id: int
    body: str
    public: bool
    author_kind: str
    author_name: str
    attachments: list[str]
    delivery: str
    created_at: datetime


class TicketDetailOut(TicketOut):
    description: str
    requester_name: str
    requester_email: str
    requester_locale: str
    organization_name: str
    custom_fields: list[dict]
    comments: list[TicketCommentOut]
    run_ids: list[int]

    @staticmethod
    def resolve_run_ids(ticket: Ticket) -> list[int]:
        return [run.pk for run in ticket.runs.all()]
