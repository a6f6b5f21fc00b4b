from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema

from tickets.models import Ticket


class WebhookAcceptedOut(Schema):
    ticket_id: int | None
    event_id: str
    duplicate: bool
    handled: bool
    ignored_reason: str = Field("", description="Why a ticket event was stored but not applied; empty otherwise.")


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
    created_at: datetime


class TicketDetailOut(TicketOut):
    description: str
    comments: list[TicketCommentOut]
    run_ids: list[int]

    @staticmethod
    def resolve_run_ids(ticket: Ticket) -> list[int]:
        return [run.pk for run in ticket.runs.all()]
