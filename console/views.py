from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agent.llm import engine_label
from agent.models import ProposedAction, Step
from agent.services import proposed_action_approve, proposed_action_reject, rating_set
from agentconsole.errors import ApplicationError
from console.forms import ApproveForm, QueueFilterForm, RateForm, RejectForm
from console.roles import is_admin, is_reviewer
from console.selectors import (
    TicketDetail,
    action_get,
    action_present,
    draft_step_get,
    queue_counts,
    queue_get,
    sidebar_panel_get,
    step_present,
    ticket_detail_get,
)
from console.zendesk_app import (
    SidebarDenied,
    frame_headers,
    sidebar_session_issue,
    sidebar_session_user,
    sidebar_user_for,
    zendesk_token_verify,
)

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."


def _require_reviewer(request: HttpRequest) -> None:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)


def _get_ticket_for_user(request: HttpRequest, pk: int) -> TicketDetail:
    _require_reviewer(request)
    detail = ticket_detail_get(ticket_id=pk, user=request.user)
    if detail is None:
        raise Http404("No such ticket.")
    return detail


def _get_action_for_user(request: HttpRequest, pk: int) -> ProposedAction:
    _require_reviewer(request)
    action = action_get(action_id=pk, user=request.user)
    if action is None:
        raise Http404("No such proposed action.")
    return action


def _get_draft_for_user(request: HttpRequest, pk: int) -> Step:
    _require_reviewer(request)
    step = draft_step_get(step_id=pk, user=request.user)
    if step is None:
        raise Http404("No such drafted note or reply.")
    return step


def _ticket_url(ticket_id: int, anchor: str) -> str:
    return f"{reverse('console:ticket-detail', args=[ticket_id])}#{anchor}"


def _action_card(request: HttpRequest, action: ProposedAction, status: int = 200, **extra: Any) -> HttpResponse:
    """The card for HTMX; without JavaScript a decision goes back to the ticket, a refusal shows the card."""
    if request.method == "POST" and not request.htmx and status == 200:
        return redirect(_ticket_url(action.run.ticket_id, f"action-{action.pk}"))
    template_name = "console/action_detail.html"
    if request.htmx:
        template_name += "#action-card"
    return render(request, template_name, {"action": action, **extra}, status=status)


def _step_card(request: HttpRequest, step: Step, status: int = 200, **extra: Any) -> HttpResponse:
    if not request.htmx and status == 200:
        return redirect(_ticket_url(step.run.ticket_id, f"step-{step.pk}"))
    template_name = "console/step_detail.html"
    if request.htmx:
        template_name += "#step-card"
    return render(request, template_name, {"step": step, **extra}, status=status)


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
    return render(request, "console/home.html#queue-counts", {"queue": {"counts": queue_counts()}})


@require_GET
@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    detail = _get_ticket_for_user(request, pk)
    template_name = "console/ticket_detail.html"
    if request.htmx:
        template_name += "#runs"
    return render(request, template_name, {"detail": detail, "engine_label": engine_label()})


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
        approved = proposed_action_approve(action=action, user=request.user, args=form.cleaned_data["args"])
    except ApplicationError as exc:
        errors = exc.extra.get("errors", [])
        return _action_card(
            request, action, status=exc.status_code, error=exc.message, errors=errors, edited_args=edited
        )
    return _action_card(request, action_present(approved, rating=action.my_rating))  # type: ignore[attr-defined]


@require_POST
@login_required
def action_reject(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _action_card(request, action, status=400, error=form.errors["reason"][0])
    try:
        rejected = proposed_action_reject(action=action, user=request.user, reason=form.cleaned_data["reason"])
    except ApplicationError as exc:
        return _action_card(request, action, status=exc.status_code, error=exc.message)
    rejected.decided_by = request.user
    return _action_card(request, action_present(rejected, rating=action.my_rating))  # type: ignore[attr-defined]


@require_POST
@login_required
def action_rate(request: HttpRequest, pk: int) -> HttpResponse:
    action = _get_action_for_user(request, pk)
    form = RateForm(request.POST)
    if not form.is_valid():
        return _action_card(request, action, status=400, rating_error=next(iter(form.errors.values()))[0])
    try:
        rating = rating_set(user=request.user, action=action, **form.cleaned_data)
    except ApplicationError as exc:
        return _action_card(request, action, status=exc.status_code, rating_error=exc.message)
    return _action_card(request, action_present(action, rating=rating))


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
