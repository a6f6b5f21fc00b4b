"""Runs: a reviewer takes one over, or closes an escalated one with its outcome."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from agent.models import AgentRun
from agent.services.runs import agent_run_close, agent_run_take_over
from agentconsole.errors import ApplicationError
from console.forms import (
    CloseForm,
    TakeOverForm,
)
from console.views.common import _get_run_for_user, _ticket_url


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
    if not form.is_valid():  # a reason past the limit is refused, never dropped while the run is taken over
        return _run_done(request, run, status=400, error=next(iter(form.errors.values()))[0])
    try:
        run = agent_run_take_over(run=run, user=request.user, reason=form.cleaned_data["reason"])
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
