"""The queue: the home page with its counts, the tickets list, and Play mode (the next pending decision)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from agent.llm import engine_label
from agentconsole.errors import ConflictError
from agentconsole.roles import is_admin
from console.forms import (
    QueueFilterForm,
    TicketQueryForm,
)
from console.selectors.queue import QUEUE_LISTS, QUEUE_PAGE, next_pending_get, queue_counts, queue_get, queue_page_get
from console.ticket_search import CURSOR_NOT_UNDERSTOOD, OUTCOMES, SAVED_VIEWS, TicketQuery, ticket_page_get
from console.views.common import _require_reviewer, _ticket_url, whole_number
from tickets.services.tickets import ticket_assign

_LIST_FIELDS = {"pending": "actions", "escalations": "escalations", "working": "runs"}


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The queue. `list` and `after` continue one list from a page's cursor: htmx gets only its next rows (with
    their own "Show more"); without JavaScript the whole page comes back with that list continued."""
    _require_reviewer(request)
    form = QueueFilterForm(request.GET)
    form.is_valid()  # an invalid filter is shown as such and ignored; the valid ones still apply
    filters = urlencode({key: value for key, value in form.cleaned_data.items() if value not in (None, "")})
    context = {"form": form, "filters": filters, "page_size": QUEUE_PAGE}
    name, after = request.GET.get("list", ""), request.GET.get("after", "")
    if name in QUEUE_LISTS and after:
        page = queue_page_get(name=name, after=after, **form.cleaned_data)
        if request.htmx:
            context["queue"] = {_LIST_FIELDS[name]: page}
            return render(request, f"console/home.html#{name}-rows", context)
    queue = queue_get(**form.cleaned_data)
    if name in QUEUE_LISTS and after:
        queue = replace(queue, **{_LIST_FIELDS[name]: page})
    context |= {"queue": queue, "is_admin": is_admin(request.user), "engine_label": engine_label()}
    return render(request, "console/home.html", context)


@require_GET
@login_required
def queue_counts_view(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request)
    form = QueueFilterForm(request.GET)
    form.is_valid()
    context = {"queue": {"counts": queue_counts(**form.cleaned_data)}, "filters": request.GET.urlencode()}
    return render(request, "console/home.html#queue-counts", context)


@require_GET
@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request)
    view = request.GET.get("view", "")
    data = {**SAVED_VIEWS[view][1], **request.GET.dict()} if view in SAVED_VIEWS else request.GET
    form = TicketQueryForm(data)
    form.is_valid()  # as on the queue: what is not understood is ignored, and said
    query = TicketQuery(**{k: v for k, v in form.cleaned_data.items() if v not in (None, "")})
    page = ticket_page_get(query=query, user=request.user)
    params = request.GET.copy()
    for key in ("after", "before"):
        params.pop(key, None)
    context = {"form": form, "page": page, "query": params.urlencode(), "saved_views": SAVED_VIEWS,
               "view": view, "outcomes": OUTCOMES,
               "cursor_not_understood": CURSOR_NOT_UNDERSTOOD}  # fmt: skip
    template_name = "console/ticket_list.html" + ("#ticket-results" if request.htmx else "")
    return render(request, template_name, context)


@require_http_methods(["GET", "POST"])
@login_required
def next_pending(request: HttpRequest) -> HttpResponse:
    """GET shows whether anything waits; POST claims the proposal that waited longest and opens it."""
    _require_reviewer(request)
    skip = [pk for value in request.POST.getlist("skip") if (pk := whole_number(value, below=2**63)) is not None]
    while request.method == "POST":
        action = next_pending_get(user=request.user, skip=skip)
        if action is None:
            break
        try:
            ticket_assign(ticket=action.run.ticket, assignee=request.user, user=request.user)
        except ConflictError:  # claimed by someone else a moment ago: serve the next one
            skip.append(action.pk)
            continue
        return redirect(_ticket_url(action.run.ticket_id, f"action-{action.pk}"))
    waiting = next_pending_get(user=request.user) is not None
    return render(request, "console/next.html", {"waiting": waiting})
