"""Decisions on proposed actions and ratings of actions and drafts."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_POST

from agent.enqueue import action_read_current_send
from agent.services.actions import proposed_action_approve, proposed_action_reject, proposed_action_respond
from agent.services.governance import rating_set
from agentconsole.errors import ApplicationError
from console.forms import (
    ApproveForm,
    RateForm,
    RejectForm,
    RespondForm,
)
from console.selectors.cards import step_card
from console.views.common import _action_card, _decided, _get_action_for_user, _get_draft_for_user, _refused, _step_card


@require_GET
@login_required
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _action_card(request, _get_action_for_user(request, pk))


@require_POST
@login_required
def action_approve(request: HttpRequest, pk: int) -> HttpResponse:
    card = _get_action_for_user(request, pk)
    form = ApproveForm(request.POST)
    edited = request.POST.get("args")
    if not form.is_valid():
        return _action_card(request, card, status=400, error=form.errors["args"][0], edited_args=edited)
    try:
        proposed_action_approve(action=card.action, user=request.user, args=form.cleaned_data["args"])
    except ApplicationError as exc:
        return _refused(request, pk, exc, edited_args=edited)
    return _decided(request, pk)


@require_POST
@login_required
def action_reject(request: HttpRequest, pk: int) -> HttpResponse:
    card = _get_action_for_user(request, pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _action_card(request, card, status=400, error=form.errors["reason"][0])
    try:
        proposed_action_reject(action=card.action, user=request.user, reason=form.cleaned_data["reason"])
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    return _decided(request, pk)


@require_POST
@login_required
def action_respond(request: HttpRequest, pk: int) -> HttpResponse:
    card = _get_action_for_user(request, pk)
    form = RespondForm(request.POST)
    if not form.is_valid():
        return _action_card(request, card, status=400, error=form.errors["feedback"][0])
    try:
        proposed_action_respond(action=card.action, user=request.user, feedback=form.cleaned_data["feedback"])
    except ApplicationError as exc:
        return _refused(request, pk, exc)
    return _decided(request, pk)


@require_POST
@login_required
def action_refresh_state(request: HttpRequest, pk: int) -> HttpResponse:
    """Read the current state again (in a worker: it calls the company's systems)."""
    card = _get_action_for_user(request, pk)
    if card.is_real_pending:
        # robust: a broker outage leaves the card as it is (logged), never a 500 for the reviewer.
        transaction.on_commit(lambda: action_read_current_send(card.action.pk), robust=True)
    return _action_card(request, card, state_refreshing=card.is_real_pending)


@require_POST
@login_required
def action_rate(request: HttpRequest, pk: int) -> HttpResponse:
    card = _get_action_for_user(request, pk)
    form = RateForm(request.POST)
    if not form.is_valid():
        return _action_card(request, card, status=400, rating_error=next(iter(form.errors.values()))[0])
    try:
        rating_set(user=request.user, action=card.action, **form.cleaned_data)
    except ApplicationError as exc:
        return _action_card(request, card, status=exc.status_code, rating_error=exc.message)
    return _action_card(request, _get_action_for_user(request, pk))


@require_POST
@login_required
def step_rate(request: HttpRequest, pk: int) -> HttpResponse:
    card = _get_draft_for_user(request, pk)
    form = RateForm(request.POST)
    if not form.is_valid():
        return _step_card(request, card, status=400, rating_error=next(iter(form.errors.values()))[0])
    try:
        rating = rating_set(user=request.user, step=card.step, **form.cleaned_data)
    except ApplicationError as exc:
        return _step_card(request, card, status=exc.status_code, rating_error=exc.message)
    return _step_card(request, step_card(card.step, rating=rating))
