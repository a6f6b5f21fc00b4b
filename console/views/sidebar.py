"""The Zendesk sidebar app. Authenticated by Zendesk's signed JWT, then a bearer sidebar token, never a cookie
(console/zendesk_app.py): so these views are exempt from CSRF, which protects cookie-authenticated requests only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from agent.services.actions import proposed_action_approve, proposed_action_reject
from agent.services.governance import rating_set
from agentconsole.errors import ApplicationError
from console.forms import (
    RateForm,
    RejectForm,
)
from console.selectors.sidebar import sidebar_panel_get
from console.selectors.tickets import action_get
from console.zendesk_app import (
    SidebarDenied,
    frame_headers,
    sidebar_session_issue,
    sidebar_session_user,
    sidebar_user_for,
    zendesk_token_verify,
)

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


def _sidebar_decision(request: HttpRequest, pk: int, decide: Any, form: forms.Form | None = None) -> HttpResponse:
    """Approve, reject or rate from the sidebar: the same services, and so the same permissions, as the console.
    A `form` that does not validate is answered with its own message, and nothing is decided."""
    try:
        user = sidebar_session_user(request)
    except SidebarDenied as exc:
        return _denied(request, exc)
    card = action_get(action_id=pk, user=user)
    if card is None:
        raise Http404("No such proposed action.")
    external_id = card.action.run.ticket.external_id
    if form is not None and not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        error = f"{form.fields[field].label or field.capitalize()}: {errors[0]}" if field in form.fields else errors[0]
        return _sidebar(request, _panel_context(request, user, external_id, error=error), status=400)
    try:
        decide(card.action, user)
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
    return _sidebar_decision(
        request,
        pk,
        lambda action, user: proposed_action_reject(action=action, user=user, reason=form.cleaned_data["reason"]),
        form,
    )


@csrf_exempt
@require_POST
def zendesk_sidebar_rate(request: HttpRequest, pk: int) -> HttpResponse:
    form = RateForm(request.POST)
    return _sidebar_decision(
        request, pk, lambda action, user: rating_set(user=user, action=action, **form.cleaned_data), form
    )
