"""The Zendesk sidebar: one helpdesk ticket's runs and what waits for a decision on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, IntegerField, Prefetch, Value, When

from agent.catalogue import get_tool
from agent.findings import Finding as ReadFinding
from agent.findings import step_findings
from agent.lifecycle import RUN_FINAL
from agent.models import AgentRun, ProposedAction, Rating, Step
from agent.policy import Risk, TicketRole
from console.selectors.cards import ActionCard, action_card, rating_mine
from console.selectors.tickets import customer_comments_since
from tickets.models import Ticket


@dataclass(frozen=True)
class SidebarPanel:
    """What the sidebar shows for the ticket open in Zendesk: the latest run, what it found, where it routed the
    ticket and why, the proposals waiting for a decision, and the latest run's other calls to rate."""

    ticket: Ticket
    run: AgentRun | None
    findings: list[ReadFinding]
    routing: dict[str, Any] | None
    pending: list[ActionCard]
    decided: list[ActionCard]
    active: bool


# Zendesk's ticket before a local one with the same number: the sidebar names Zendesk tickets.
_ZENDESK_FIRST = Case(When(source=Ticket.Source.ZENDESK, then=Value(0)), default=Value(1), output_field=IntegerField())


def _routes(tool_name: str) -> bool:
    tool = get_tool(tool_name)
    return tool is not None and tool.ticket_role == TicketRole.ROUTE


def sidebar_panel_get(*, external_id: str, user: AbstractBaseUser) -> SidebarPanel | None:
    ticket = (
        Ticket.objects.select_related("tenant_link").filter(external_id=external_id).order_by(_ZENDESK_FIRST).first()
    )
    if ticket is None:
        return None
    my_ratings = Rating.objects.filter(user=user)
    actions = ProposedAction.objects.select_related("decided_by", "run").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings")
    )
    runs = list(
        AgentRun.objects.filter(ticket=ticket)
        .select_related("workflow")
        .prefetch_related(
            Prefetch("steps", queryset=Step.objects.order_by("index"), to_attr="transcript"),
            Prefetch("actions", queryset=actions.order_by("created_at", "id"), to_attr="calls"),
        )
        .order_by("created_at", "id")
    )
    comments = list(ticket.comments.order_by("created_at", "id"))
    latest = runs[-1] if runs else None
    pending = [a for run in runs for a in run.calls if a.status == ProposedAction.Status.PENDING]  # type: ignore[attr-defined]
    decided = [
        a
        for a in (latest.calls if latest else [])  # type: ignore[attr-defined]
        if a.status != ProposedAction.Status.PENDING and a.risk != Risk.READ
    ]

    def card(action: ProposedAction) -> ActionCard:
        return action_card(
            action,
            rating=rating_mine(action.my_ratings),  # type: ignore[attr-defined]
            comments_since=customer_comments_since(action, comments),
        )

    route = next(
        (a for a in reversed(latest.calls) if _routes(a.tool) and a.status == ProposedAction.Status.EXECUTED),  # type: ignore[attr-defined]
        None,
    ) if latest else None  # fmt: skip
    routing = (route.execution_result or {}).get("data") if route else None
    return SidebarPanel(
        ticket=ticket,
        run=latest,
        findings=step_findings(latest.transcript) if latest else [],  # type: ignore[attr-defined]
        routing=routing if isinstance(routing, dict) else None,
        pending=[card(action) for action in pending],
        decided=[card(action) for action in decided],
        active=any(run.status not in RUN_FINAL for run in runs),
    )
