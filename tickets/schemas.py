from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Field, Schema

from agentconsole.schemas import ErrorOut
from tickets.models import Ticket

__all__ = ["ErrorOut", "TicketDetailOut", "TicketFilterIn", "TicketOut", "WebhookAcceptedOut"]


class WebhookAcceptedOut(Schema):
    """The event is stored; a worker applies it (creates or updates the ticket, starts its run) right after."""

    event_id: str = Field(description="The event's id, as Zendesk sent it.")
    duplicate: bool = Field(description="True when this event id was stored before: nothing was stored again.")


# One enum per field: Django's choices classes are all called "Status", and the OpenAPI document would name them
# alike and show one for all. A Literal is inlined where it is used.
TicketStatusIn = Literal[tuple(Ticket.Status.values)]  # type: ignore[valid-type]


class TicketFilterIn(Schema):
    status: TicketStatusIn | None = None  # type: ignore[valid-type]
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
