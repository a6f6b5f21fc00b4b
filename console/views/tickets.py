"""The ticket page: its live refresh, who is looking at it, and the claim."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from agent.llm import engine_label
from agent.models import AgentRun
from agentconsole.errors import ApplicationError
from console.forms import (
    ClaimForm,
)
from console.selectors.tickets import (
    TicketDetail,
    Timeline,
    presence_info,
    run_steps_before_get,
    ticket_live_get,
)
from console.services import presence_touch
from console.views.common import (
    _CSRF_INPUT,
    _get_plain_ticket_for_user,
    _get_ticket_for_user,
    _live,
    _require_reviewer,
    _ticket_url,
    whole_number,
)
from tickets.models import Ticket
from tickets.services.tickets import ticket_assign

ENTRY_END = "<!--/entry-->"
NO_STEPS = '<li class="empty">No steps yet.</li>'
EARLIER_NOT_UNDERSTOOD = "`before` must be the index of a step (a whole number)."
_HAVE = re.compile(r"^(\d{1,19}):(\d{1,9}):(\d{1,19}):([0-9a-f]{16})$")


def _digest(html: str) -> str:
    return hashlib.sha256(_CSRF_INPUT.sub("", html).encode()).hexdigest()[:16]


def _have(value: str) -> dict[int, tuple[int, int, str]]:
    """What the polling page holds of each run's timeline: run id -> (index of its first step, last step id, digest
    of its entries). Anything malformed is ignored: that run's timeline is then sent whole, as on the first load."""
    held = {}
    for token in value.split(",")[:100]:
        found = _HAVE.match(token)
        if found:
            held[int(found.group(1))] = (int(found.group(2)), int(found.group(3)), found.group(4))
    return held


def _timelines(
    request: HttpRequest, detail: TicketDetail, have: dict[int, tuple[int, int, str]]
) -> tuple[TicketDetail, str]:
    """Each run's timeline as HTML, and what the poll sends of it: when the page holds exactly the entries up to its
    last step as they render now, only the entries after them (appended by htmx); otherwise the whole timeline.
    Returns the detail with each run's Timeline, and what the page then holds, for its next poll."""
    tokens, views = [], []
    for view in detail.runs:
        run = view.run
        html = render_to_string(
            "console/ticket_detail.html#timeline-entries",
            {"entries": view.entries, "outcomes": AgentRun.Outcome.choices},
            request,
        )
        pieces = html.split(ENTRY_END)[:-1]
        whole = "".join(pieces) or NO_STEPS
        last = max((step.pk for step in run.transcript), default=0)  # type: ignore[attr-defined]
        timeline = Timeline(html=mark_safe(whole))  # noqa: S308 -- the template's own output
        if run.pk in have and have[run.pk][0] == view.first_index:
            _, held_last, held_digest = have[run.pk]
            kept = sum(1 for entry in view.entries if entry.step.step.pk <= held_last)
            if pieces and kept and _digest("".join(pieces[:kept])) == held_digest:
                timeline = replace(timeline, kept=True, new=mark_safe("".join(pieces[kept:])))  # noqa: S308
        views.append(replace(view, timeline=timeline))
        tokens.append(f"{run.pk}:{view.first_index}:{last}:{_digest(whole)}")
    return replace(detail, runs=views), ",".join(tokens)


@require_GET
@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The ticket page; polled by htmx with `have` (what the page shows of each run), it sends only what is new.
    `steps=all` shows every step of every run (the "Show earlier steps" link without JavaScript)."""
    have = _have(request.GET.get("have", "")) if request.htmx else {}
    since = {run_id: first for run_id, (first, _, _) in have.items()}
    detail = _get_ticket_for_user(request, pk, since=since, whole=request.GET.get("steps") == "all")
    detail, have = _timelines(request, detail, have)
    context = {"detail": detail, "have": have, "engine_label": engine_label(), "outcomes": AgentRun.Outcome.choices}
    if request.htmx:
        return _live(request, "console/ticket_detail.html#live", context)
    return render(request, "console/ticket_detail.html", context)


@require_GET
@login_required
def run_steps_earlier(request: HttpRequest, pk: int, run_pk: int) -> HttpResponse:
    """The steps of a run before those the ticket page shows, for its "Show earlier steps" (htmx); without
    JavaScript, the ticket page with every step."""
    _require_reviewer(request)
    before = whole_number(request.GET.get("before", ""))
    if before is None:
        return HttpResponse(EARLIER_NOT_UNDERSTOOD, status=400)
    if not request.htmx:
        return redirect(f"{_ticket_url(pk)}?steps=all#run-{run_pk}")
    view = run_steps_before_get(ticket_id=pk, run_id=run_pk, before=before, user=request.user)
    if view is None:
        raise Http404("No such run on this ticket.")
    context = {"view": view, "entries": view.entries, "outcomes": AgentRun.Outcome.choices, "ticket_pk": pk}
    return render(request, "console/ticket_detail.html#timeline-earlier-page", context)


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
