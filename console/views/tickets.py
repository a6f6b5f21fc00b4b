"""The ticket page: its live refresh, who is looking at it, and the claim."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from agent.llm import engine_label
from agent.models import AgentRun
from agentconsole.errors import ApplicationError
from console.forms import (
    ClaimForm,
)
from console.selectors.tickets import presence_info, ticket_live_get
from console.services import presence_touch
from console.views.common import _get_plain_ticket_for_user, _get_ticket_for_user, _live, _require_reviewer, _ticket_url
from tickets.models import Ticket
from tickets.services.tickets import ticket_assign


@require_GET
@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    detail = _get_ticket_for_user(request, pk)
    context = {"detail": detail, "engine_label": engine_label(), "outcomes": AgentRun.Outcome.choices}
    if request.htmx:
        return _live(request, "console/ticket_detail.html#live", context)
    return render(request, "console/ticket_detail.html", context)


@require_GET
@login_required
def ticket_live(request: HttpRequest, pk: int) -> HttpResponse:
    _require_reviewer(request)
    found = ticket_live_get(ticket_id=pk)
    if found is None:
        raise Http404("No such ticket.")
    ticket, comments = found
    return _live(request, "console/ticket_detail.html#ticket-live", {"ticket": ticket, "comments": comments})


def _presence(request: HttpRequest, ticket: Ticket, status: int = 200, **extra: Any) -> HttpResponse:
    if not request.htmx:
        return redirect(_ticket_url(ticket.pk)) if status == 200 else HttpResponse(extra.get("error"), status=status)
    ticket.refresh_from_db(fields=["assignee", "assigned_at"])
    context = {"ticket": ticket, "presence": presence_info(ticket=ticket, user=request.user), **extra}
    return render(request, "console/ticket_detail.html#presence", context, status=status)


@require_POST
@login_required
def ticket_presence(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_plain_ticket_for_user(request, pk)
    presence_touch(user=request.user, ticket=ticket)
    return _presence(request, ticket)


@require_POST
@login_required
def ticket_claim(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_plain_ticket_for_user(request, pk)
    form = ClaimForm(request.POST)
    form.is_valid()
    try:
        ticket_assign(ticket=ticket, assignee=request.user, user=request.user, force=form.cleaned_data["take"])
    except ApplicationError as exc:
        return _presence(request, ticket, status=exc.status_code, error=exc.message)
    return _presence(request, ticket)


@require_POST
@login_required
def ticket_release(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_plain_ticket_for_user(request, pk)
    try:
        ticket_assign(ticket=ticket, assignee=None, user=request.user)
    except ApplicationError as exc:
        return _presence(request, ticket, status=exc.status_code, error=exc.message)
    return _presence(request, ticket)
