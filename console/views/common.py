"""What every console view shares: access to a ticket, action, run or draft for the signed-in reviewer, and the
cards and live fragments the decision views answer with."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse

from agent.models import AgentRun
from agentconsole.errors import ApplicationError, ConflictError
from agentconsole.roles import is_reviewer
from console.selectors.cards import ActionCard, StepCard, step_delivered
from console.selectors.tickets import TicketDetail, action_get, draft_step_get, run_get, ticket_detail_get
from tickets.models import Ticket

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."
STALE_PAGE = "This page was out of date: {message} Nothing was changed; the card now shows the current state."
DIGEST_HEADER = "X-Live-Digest"
DIGEST_PLACEHOLDER = "__LIVE_DIGEST__"
_CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')


def whole_number(value: str, *, below: int = 2**31) -> int | None:
    """A positive whole number written in ASCII digits, below `below` (an id or index the database can hold); None
    for anything else. str.isdigit() alone lets through digits int() refuses ("\u00b2") or reads ("\u0663")."""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if 0 < number < below else None


def _require_reviewer(request: HttpRequest) -> None:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)


def _get_ticket_for_user(request: HttpRequest, pk: int, **options: Any) -> TicketDetail:
    _require_reviewer(request)
    detail = ticket_detail_get(ticket_id=pk, user=request.user, **options)
    if detail is None:
        raise Http404("No such ticket.")
    return detail


def _get_plain_ticket_for_user(request: HttpRequest, pk: int) -> Ticket:
    _require_reviewer(request)
    ticket = Ticket.objects.select_related("assignee").filter(pk=pk).first()
    if ticket is None:
        raise Http404("No such ticket.")
    return ticket


def _get_action_for_user(request: HttpRequest, pk: int) -> ActionCard:
    _require_reviewer(request)
    card = action_get(action_id=pk, user=request.user)
    if card is None:
        raise Http404("No such proposed action.")
    return card


def _get_run_for_user(request: HttpRequest, pk: int) -> AgentRun:
    _require_reviewer(request)
    run = run_get(run_id=pk)
    if run is None:
        raise Http404("No such run.")
    return run


def _get_draft_for_user(request: HttpRequest, pk: int) -> StepCard:
    _require_reviewer(request)
    card = draft_step_get(step_id=pk, user=request.user)
    if card is None:
        raise Http404("No such drafted note or reply.")
    return card


def _ticket_url(ticket_id: int, anchor: str = "") -> str:
    url = reverse("console:ticket-detail", args=[ticket_id])
    return f"{url}#{anchor}" if anchor else url


def _live(request: HttpRequest, template_name: str, context: dict[str, Any]) -> HttpResponse:
    """A polled fragment: 204 (htmx swaps nothing, so open details and scroll stay put) when it has not changed
    since the digest the page holds."""
    html = render_to_string(template_name, {**context, "live_digest": DIGEST_PLACEHOLDER}, request)
    digest = hashlib.sha256(_CSRF_INPUT.sub("", html).encode()).hexdigest()[:16]
    if request.htmx and request.headers.get(DIGEST_HEADER) == digest:
        return HttpResponse(status=204)
    return HttpResponse(html.replace(DIGEST_PLACEHOLDER, digest))


def _action_card(request: HttpRequest, card: ActionCard, status: int = 200, **extra: Any) -> HttpResponse:
    """The card for HTMX; without JavaScript a decision goes back to the ticket, a refusal shows the card."""
    action = card.action
    if request.method == "POST" and not request.htmx and status == 200:
        return redirect(_ticket_url(action.run.ticket_id, card.dom_id))
    template_name = "console/action_detail.html"
    if request.htmx:
        template_name += "#action-card"
    return render(request, template_name, {"card": card, "action": action, **extra}, status=status)


def _refused(request: HttpRequest, pk: int, exc: ApplicationError, **extra: Any) -> HttpResponse:
    """A refused decision, shown on the card as it now is (it may have been decided from another page)."""
    message = STALE_PAGE.format(message=exc.message) if isinstance(exc, ConflictError) else exc.message
    errors = exc.extra.get("errors", [])
    current = _get_action_for_user(request, pk)
    return _action_card(request, current, status=exc.status_code, error=message, errors=errors, **extra)


def _decided(request: HttpRequest, pk: int) -> HttpResponse:
    return _action_card(request, _get_action_for_user(request, pk), just_decided=True)


def _step_card(request: HttpRequest, card: StepCard, status: int = 200, **extra: Any) -> HttpResponse:
    step = card.step
    if not request.htmx and status == 200:
        return redirect(_ticket_url(step.run.ticket_id, card.dom_id))
    template_name = "console/step_detail.html"
    if request.htmx:
        template_name += "#step-card"
    context = {"card": card, "step": step, "delivered": step_delivered(step), **extra}
    return render(request, template_name, context, status=status)
