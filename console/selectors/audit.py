"""The audit log page: events with the ticket and the action each one is about."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from agent.models import AgentRun, ProposedAction
from agentconsole.keyset import keyset_page
from audit.models import AuditEvent

AUDIT_PAGE_SIZE = 50
AUDIT_ORDER = ("-created_at", "-id")  # newest first; the (created_at, id) indexes serve it, filtered or not
ACTION_TYPE = "agent.proposedaction"
RUN_TYPE = "agent.agentrun"


@dataclass(frozen=True)
class AuditRow:
    """An event with what the page shows beside it: its ticket, and for action events what ran and returned."""

    event: AuditEvent
    ticket_id: int | None = None
    action: ProposedAction | None = None

    @property
    def ran(self) -> dict[str, Any] | None:
        """The tool and args: the action's own when loaded, else whatever the payload recorded."""
        if self.action is not None:
            return {"tool": self.action.tool, "args": self.action.args}
        payload = self.event.payload
        if "tool" in payload or "args" in payload:
            return {"tool": payload.get("tool", ""), "args": payload.get("args")}
        return None

    @property
    def payload_json(self) -> str:
        return _json(self.event.payload)

    @property
    def ran_json(self) -> str:
        return _json(self.ran["args"]) if self.ran else ""

    @property
    def returned_json(self) -> str:
        return _json(self.action.execution_result) if self.action and self.action.execution_result else ""

    @property
    def verified_json(self) -> str:
        return _json(self.action.verification_result) if self.action and self.action.verification_result else ""


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def _object_filter(value: str) -> Q:
    """ "agent.proposedaction#12", "agent.proposedaction" or "12"."""
    value = value.strip()
    if "#" in value:
        object_type, object_id = value.split("#", 1)
        return Q(object_type=object_type.strip().lower(), object_id=object_id.strip())
    if value.isdigit():
        return Q(object_id=value)
    return Q(object_type=value.lower())


def audit_event_filtered(*, verb: str = "", actor: str = "", obj: str = "") -> QuerySet[AuditEvent]:
    """Newest first. actor is a username, or agent / system / webhook for events no person made."""
    events = AuditEvent.objects.select_related("actor").order_by(*AUDIT_ORDER)
    if verb.strip():
        events = events.filter(verb=verb.strip())
    if actor.strip():
        events = events.filter(Q(actor__username=actor.strip()) | Q(actor__isnull=True, actor_kind=actor.strip()))
    if obj.strip():
        events = events.filter(_object_filter(obj))
    return events


def _ids(events: list[AuditEvent], object_type: str) -> list[int]:
    return [int(e.object_id) for e in events if e.object_type == object_type and e.object_id.isdigit()]


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    newer: str  # cursor of the newer page ("" on the newest)
    older: str  # cursor of the older page ("" on the oldest)
    newest: bool  # the page starts at the newest event (no cursor was given)


def audit_event_page(
    *, verb: str = "", actor: str = "", obj: str = "", after: str = "", before: str = "", oldest: bool = False
) -> AuditPage:
    """One page of events as AuditRows, newest first, by keyset: the page older than the `after` cursor, newer than
    the `before` cursor, the newest page, or (`oldest`) the oldest one. Three queries whatever the page or the
    log's size: page, actions, runs. A cursor this page did not make is a CursorError (400)."""
    page = keyset_page(
        audit_event_filtered(verb=verb, actor=actor, obj=obj),
        ordering=AUDIT_ORDER,
        limit=AUDIT_PAGE_SIZE,
        after=after,
        before=before,
        last=oldest,
    )
    events = page.items
    action_ids, run_ids = _ids(events, ACTION_TYPE), _ids(events, RUN_TYPE)
    actions = (
        {a.pk: a for a in ProposedAction.objects.filter(pk__in=action_ids).select_related("run")} if action_ids else {}
    )
    run_tickets = dict(AgentRun.objects.filter(pk__in=run_ids).values_list("pk", "ticket_id")) if run_ids else {}
    rows = []
    for event in events:
        key = int(event.object_id) if event.object_id.isdigit() else None
        action = actions.get(key) if event.object_type == ACTION_TYPE else None
        ticket_id = action.run.ticket_id if action else run_tickets.get(key) if event.object_type == RUN_TYPE else None
        rows.append(AuditRow(event=event, ticket_id=ticket_id, action=action))
    newest = not (after or before or oldest)
    return AuditPage(rows=rows, newer=page.previous, older=page.next, newest=newest)
