from __future__ import annotations

import hashlib
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agent.llm import engine_label
from agent.models import AgentRun, ProposedAction, Step
from agent.services.actions import proposed_action_approve, proposed_action_reject, proposed_action_respond
from agent.services.governance import rating_set
from agent.services.runs import agent_run_close, agent_run_take_over
from agent.tasks import proposed_action_read_current_task
from agentconsole.errors import ApplicationError, ConflictError
from agentconsole.roles import is_admin, is_reviewer
from console.forms import (
    ApproveForm,
    ClaimForm,
    CloseForm,
    QueueFilterForm,
    RateForm,
    RejectForm,
    RespondForm,
    TakeOverForm,
    TicketQueryForm,
)
from console.selectors import (
    TicketDetail,
    action_get,
    draft_step_get,
    next_pending_get,
    presence_info,
    queue_counts,
    queue_get,
    run_get,
    sidebar_panel_get,
    step_present,
    ticket_detail_get,
    ticket_live_get,
)
from console.services import presence_touch
from console.ticket_search import OUTCOMES, SAVED_VIEWS, TicketQuery, ticket_page_get
from console.zendesk_app import (
    SidebarDenied,
    frame_headers,
    sidebar_session_issue,
    sidebar_session_user,
    sidebar_user_for,
    zendesk_token_verify,
)
from tickets.models import Ticket
from tickets.services.tickets import ticket_assign

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."
STALE_PAGE = "This page was out of date: {message} Nothing was changed; the card now shows the current state."
DIGEST_HEADER = "X-Live-Digest"
DIGEST_PLACEHOLDER = "__LIVE_DIGEST__"
_CSRF_INPUT = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]*">')


def _require_reviewer(request: HttpRequest) -> None:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)


def _get_ticket_for_user(request: HttpRequest, pk: int) -> TicketDetail:
    _require_reviewer(request)
    detail = ticket_detail_get(ticket_id=pk, user=request.user)
    if detail is None:
        raise Http404("No such ticket.")
    return detail


def _get_plain_ticket_for_user(request: HttpRequest, pk: int) -> Ticket:
    _require_reviewer(request)
    ticket = Ticket.objects.select_related("assignee").filter(pk=pk).first()
    if ticket is None:
        raise Http404("No such ticket.")
    return ticket


def _get_action_for_user(request: HttpRequest, pk: int) -> ProposedAction:
    _require_reviewer(request)
    action = action_get(action_id=pk, user=request.user)
    if action is None:
        raise Http404("No such proposed action.")
    return action


def _get_run_for_user(request: HttpRequest, pk: int) -> AgentRun:
    _require_reviewer(request)
    run = run_get(run_id=pk)
    if run is None:
        raise Http404("No such run.")
    return run


def _get_draft_for_user(request: HttpRequest, pk: int) -> Step:
    _require_reviewer(request)
    step = draft_step_get(step_id=pk, user=request.user)
    if step is None:
        raise Http404("No such drafted note or reply.")
    return step


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


def _action_card(request: HttpRequest, action: ProposedAction, status: int = 200, **extra: Any) -> HttpResponse:
    """The card for HTMX; without JavaScript a decision goes back to the ticket, a refusal shows the card."""
    if request.method == "POST" and not request.htmx and status == 200:
        return redirect(_ticket_url(action.run.ticket_id, f"action-{action.pk}"))
    template_name = "console/action_detail.html"
    if request.htmx:
        template_name += "#action-card"
    return render(request, template_name, {"action": action, **extra}, status=status)


def _refused(request: HttpRequest, pk: int, exc: ApplicationError, **extra: Any) -> HttpResponse:
    """A refused decision, shown on the card as it now is (it may have been decided from another page)."""
    message = STALE_PAGE.format(message=exc.message) if isinstance(exc, ConflictError) else exc.message
    errors = exc.extra.get("errors", [])
    current = _get_action_for_user(request, pk)
    return _action_card(request, current, status=exc.status_code, error=message, errors=errors, **extra)


def _decided(request: HttpRequest, pk: int) -> HttpResponse:
    return _action_card(request, _get_action_for_user(request, pk), just_decided=True)


def _step_card(request: HttpRequest, step: Step, status: int = 200, **extra: Any) -> HttpResponse:
    if not request.htmx and status == 200:
        return redirect(_ticket_url(step.run.ticket_id, f"step-{step.pk}"))
    template_name = "console/step_detail.html"
    if request.htmx:
        template_name += "#step-card"
    return render(request, template_name, {"step": step, **extra}, status=status)


# --- The queue and the tickets view -----------------------------------------------------------------------------


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request)
    form = QueueFilterForm(request.GET)
    form.is_valid()  # an invalid filter is shown as such and ignored; the valid ones still apply
    queue = queue_get(**form.cleaned_data)
    context = {"form": form, "queue": queue, "is_admin": is_admin(request.user), "engine_label": engine_label()}
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
               "view": view, "outcomes": OUTCOMES}  # fmt: skip
    template_name = "console/ticket_list.html" + ("#ticket-results" if request.htmx else "")
    return render(request, template_name, context)


# --- Next pending (Play mode) -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def next_pending(request: HttpRequest) -> HttpResponse:
    """GET shows whether anything waits; POST claims the proposal that waited longest and opens it."""
    _require_reviewer(request)
    skip = [int(pk) for pk in request.POST.getlist("skip") if pk.isdigit()]
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


# --- The ticket page ------------------------------------------------------------------------------------------


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


# --- Decisions ------------------------------------------------------------------------------------------------


@require_GET
@login_required
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _action_card(request, _get_action_for_user(request, pk))


@require_POST
@login_required
def action_approve(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = ApproveForm(request.POST)
    edited = request.POST.get("args")
    if not form.is_valid():
        return _action_card(request, action, status=400, error=form.errors["args"][0], edited_args=edited)
    try:
        proposed_action_approve(action=action, user=request.user, args=form.cleaned_data["args"])
    except ApplicationError as exc:
        return _refused(request, pk, exc, edited_args=edited)
    return _decided(request, pk)


@require_POST
@login_required
def action_reject(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _action_card(request, action, status=400, error=form.errors["reason"][0])
    try:
        proposed_action_reject(action=action, user=request.user, reason=form.cleaned_data["reason"])
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    return _decided(request, pk)


@require_POST
@login_required
def action_respond(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = RespondForm(request.POST)
    if not form.is_valid():
        return _action_card(request, action, status=400, error=form.errors["feedback"][0])
    try:
        proposed_action_respond(action=action, user=request.user, feedback=form.cleaned_data["feedback"])
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    return _decided(request, pk)


@require_POST
@login_required
def action_refresh_state(request: HttpRequest, pk: int) -> HttpResponse:
    """Read the current state again (in a worker: it calls the company's systems)."""
    action = _get_action_for_user(request, pk)
    if action.status == ProposedAction.Status.PENDING:
        # robust: a broker outage leaves the card as it is (logged), never a 500 for the reviewer.
        transaction.on_commit(lambda: proposed_action_read_current_task.delay(action.pk), robust=True)
    return _action_card(request, action, state_refreshing=action.status == ProposedAction.Status.PENDING)


@require_POST
@login_required
def action_rate(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = RateForm(request.POST)
    if not form.is_valid():
        return _action_card(request, action, status=400, rating_error=next(iter(form.errors.values()))[0])
    try:
        rating_set(user=request.user, action=action, **form.cleaned_data)
    except ApplicationError as exc:
        return _action_card(request, action, status=exc.status_code, rating_error=exc.message)
    return _action_card(request, _get_action_for_user(request, pk))


@require_POST
@login_required
def step_rate(request: HttpRequest, pk: int) -> HttpResponse:
    step = _get_draft_for_user(request, pk)
    form = RateForm(request.POST)
    if not form.is_valid():
        return _step_card(request, step, status=400, rating_error=next(iter(form.errors.values()))[0])
    try:
        rating = rating_set(user=request.user, step=step, **form.cleaned_data)
    except ApplicationError as exc:
        return _step_card(request, step, status=exc.status_code, rating_error=exc.message)
    return _step_card(request, step_present(step, rating=rating))


# --- The Zendesk sidebar app --------------------------------------------------------------------------------
# Authenticated by Zendesk's signed JWT, then a bearer sidebar token, never a cookie (console/zendesk_app.py): so
# these views are exempt from CSRF, which protects cookie-authenticated requests only.

SIDEBAR_TEMPLATE = "console/zendesk_sidebar.html"


def _sidebar(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    """The whole sidebar page, or only its panel for HTMX (a decision, a poll)."""
    template_name = SIDEBAR_TEMPLATE + ("#panel" if request.htmx else "")
    context = {"sdk_url": settings.ZENDESK_APP_SDK_URL, **context}
    return frame_headers(render(request, template_name, context, status=status))


def _denied(request: HttpRequest, exc: SidebarDenied) -> HttpResponse:
    return frame_headers(render(request, SIDEBAR_TEMPLATE + "#denied", {"message": exc.message}, status=403))


def _panel_context(request: HttpRequest, user: Any, external_id: str, **extra: Any) -> dict[str, Any]:
    panel = sidebar_panel_get(external_id=external_id, user=user) if external_id else None
    console_url = request.build_absolute_uri(reverse("console:ticket-detail", args=[panel.ticket.pk])) if panel else ""
    return {
        "panel": panel,
        "external_id": external_id,
        "sidebar_user": user,
        "session": sidebar_session_issue(user),
        "console_url": console_url,
        **extra,
    }


@csrf_exempt
@require_http_methods(["GET", "POST"])
def zendesk_sidebar(request: HttpRequest) -> HttpResponse:
    """The page Zendesk opens in the ticket sidebar (the app's location URL), with its signed `token`."""
    try:
        claims = zendesk_token_verify(request.POST.get("token") or request.GET.get("token", ""))
        user = sidebar_user_for(claims)
    except SidebarDenied as exc:
        return _denied(request, exc)
    external_id = str(request.POST.get("ticket_id") or request.GET.get("ticket_id") or claims.get("ticket_id") or "")
    return _sidebar(request, _panel_context(request, user, external_id.strip()))


@csrf_exempt
@require_GET
def zendesk_sidebar_panel(request: HttpRequest, external_id: str) -> HttpResponse:
    try:
        user = sidebar_session_user(request)
    except SidebarDenied as exc:
        return _denied(request, exc)
    return _sidebar(request, _panel_context(request, user, external_id))


def _sidebar_decision(request: HttpRequest, pk: int, decide: Any) -> HttpResponse:
    """Approve, reject or rate from the sidebar: the same services, and so the same permissions, as the console."""
    try:
        user = sidebar_session_user(request)
    except SidebarDenied as exc:
        return _denied(request, exc)
    action = action_get(action_id=pk, user=user)
    if action is None:
        raise Http404("No such proposed action.")
    external_id = action.run.ticket.external_id
    try:
        decide(action, user)
    except ApplicationError as exc:
        context = _panel_context(request, user, external_id, error=exc.message)
        return _sidebar(request, context, status=exc.status_code)
    return _sidebar(request, _panel_context(request, user, external_id))


@csrf_exempt
@require_POST
def zendesk_sidebar_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _sidebar_decision(request, pk, lambda action, user: proposed_action_approve(action=action, user=user))


@csrf_exempt
@require_POST
def zendesk_sidebar_reject(request: HttpRequest, pk: int) -> HttpResponse:
    form = RejectForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _sidebar_decision(
        request, pk, lambda action, user: proposed_action_reject(action=action, user=user, reason=reason)
    )


@csrf_exempt
@require_POST
def zendesk_sidebar_rate(request: HttpRequest, pk: int) -> HttpResponse:
    form = RateForm(request.POST)
    fields = form.cleaned_data if form.is_valid() else {"value": 0}
    return _sidebar_decision(request, pk, lambda action, user: rating_set(user=user, action=action, **fields))


# --- Runs: take over, close ------------------------------------------------------------------------------------


def _run_done(request: HttpRequest, run: AgentRun, status: int = 200, error: str = "") -> HttpResponse:
    """Back to the ticket, which now shows the run ended or closed (HTMX: HX-Redirect, a full page load). A
    refusal is a one-line message the form shows beside itself."""
    if status != 200:
        return HttpResponse(error, status=status, content_type="text/plain; charset=utf-8")
    if request.htmx:
        response = HttpResponse(status=200)
        response["HX-Redirect"] = _ticket_url(run.ticket_id, f"run-{run.pk}")
        return response
    return redirect(_ticket_url(run.ticket_id, f"run-{run.pk}"))


@require_POST
@login_required
def run_take_over(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    form = TakeOverForm(request.POST)
    form.is_valid()
    try:
        run = agent_run_take_over(run=run, user=request.user, reason=form.cleaned_data.get("reason", ""))
    except ApplicationError as exc:
        return _run_done(request, run, status=exc.status_code, error=exc.message)
    return _run_done(request, run)


@require_POST
@login_required
def run_close(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run_for_user(request, pk)
    form = CloseForm(request.POST)
    if not form.is_valid():
        return _run_done(request, run, status=400, error=next(iter(form.errors.values()))[0])
    try:
        run = agent_run_close(run=run, user=request.user, **form.cleaned_data)
    except ApplicationError as exc:
        return _run_done(request, run, status=exc.status_code, error=exc.message)
    return _run_done(request, run)
