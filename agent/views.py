from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from agent.dashboard import WorkflowCard, dashboard_get, workflow_cards
from agent.forms import DashboardForm, GapsForm, PhaseChangeForm, ReplayForm, StopAutonomyForm, first_error
from agent.gaps import knowledge_gap_rows, knowledge_gaps
from agent.models import Replay, ReplayItem, Workflow
from agent.permissions import NOT_AN_ADMIN
from agent.replay import replay_start, suite_run_request
from agent.selectors import regression_case_list, replay_get, replay_list
from agent.services.governance import autonomy_stop_all, workflow_phase_change
from agent.versions import version_rows
from agentconsole.errors import ApplicationError, PermissionDeniedError
from agentconsole.roles import is_admin, is_reviewer

NOT_A_MEMBER = "Your account is in neither the reviewers nor the admins group. Ask an admin for access."
PHASE_CHANGED = "{name} is now in the {phase} phase."
AUTONOMY_STOPPED = "Autonomy stopped: {count} workflow(s) dropped to triage."
LIST_TEMPLATE = "agent/workflow_list.html"


def _require_member(request: HttpRequest) -> None:
    if not is_reviewer(request.user):
        raise PermissionDenied(NOT_A_MEMBER)


def _require_admin(request: HttpRequest) -> None:
    """Refuse early so a reviewer gets 403 whatever they post; the services check again and stay the authority."""
    _require_member(request)
    if not is_admin(request.user):
        raise PermissionDenied(NOT_AN_ADMIN)


def _get_workflow_for_admin(request: HttpRequest, slug: str) -> Workflow:
    _require_admin(request)
    return get_object_or_404(Workflow, slug=slug)


def _render_list(
    request: HttpRequest, cards: list[WorkflowCard], *, fragment: str = "", status: int = 200, **extra: object
) -> HttpResponse:
    template = f"{LIST_TEMPLATE}#{fragment}" if request.htmx and fragment else LIST_TEMPLATE
    context = {"cards": cards, "is_admin": is_admin(request.user), "phases": Workflow.Phase.choices, **extra}
    if len(cards) == 1:
        context["card"] = cards[0]
    return render(request, template, context, status=status)


@require_GET
@login_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    _require_member(request)
    return _render_list(request, workflow_cards(), fragment="workflows")


@require_POST
@login_required
def workflow_phase(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = _get_workflow_for_admin(request, slug)
    form = PhaseChangeForm(request.POST)
    error, unmet, status = first_error(form), [], 400
    if form.is_valid():
        try:
            workflow = workflow_phase_change(workflow=workflow, user=request.user, **form.cleaned_data)
            error, status = "", 200
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except ApplicationError as exc:
            error, unmet, status = exc.message, exc.extra.get("unmet", []), exc.status_code
    done = PHASE_CHANGED.format(name=workflow.name, phase=workflow.get_phase_display()) if not error else ""
    if not request.htmx and not error:
        messages.success(request, done)
        return redirect(f"{reverse('agent:workflow-list')}#workflow-{slug}")
    cards = _cards_saying(request, slug, error=error, error_unmet=unmet, message=done)
    return _render_list(request, cards, fragment="workflow-card", status=status)


@require_POST
@login_required
def autonomy_stop(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    form = StopAutonomyForm(request.POST)
    error, status, done = first_error(form), 400, ""
    if form.is_valid():
        try:
            count = autonomy_stop_all(user=request.user, reason=form.cleaned_data["reason"])
            error, status, done = "", 200, AUTONOMY_STOPPED.format(count=count)
        except PermissionDeniedError as exc:
            raise PermissionDenied(exc.message) from exc
        except ApplicationError as exc:
            error, status = exc.message, exc.status_code
    if not request.htmx and not error:
        messages.success(request, done)
        return redirect("agent:workflow-list")
    return _render_list(
        request, workflow_cards(), fragment="workflows", status=status, stop_error=error, stop_message=done
    )


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    _require_member(request)
    form = DashboardForm(request.GET or {"weeks": 12})
    weeks = form.cleaned_data["weeks"] if form.is_valid() else 12
    template = "agent/dashboard.html#dashboard-body" if request.htmx else "agent/dashboard.html"
    return render(request, template, {"form": form, "dashboard": dashboard_get(weeks=weeks)})


# --- Proof before promotion: versions, suites, replays ---------------------------------------------------------

REPLAY_TEMPLATE = "agent/replay_detail.html"


def _card_error(request: HttpRequest, slug: str, error: str, status: int) -> HttpResponse:
    """A refused replay or suite run: the workflow's card (the whole page without htmx) says why."""
    return _render_list(request, _cards_saying(request, slug, error=error), fragment="workflow-card", status=status)


def _cards_saying(request: HttpRequest, slug: str, **outcome: Any) -> list[WorkflowCard]:
    """The workflow cards (for htmx only the one posted to), that one saying how the POST went."""
    cards = workflow_cards(slug=slug if request.htmx else None)
    return [replace(card, **outcome) if card.workflow.slug == slug else card for card in cards]


def _replay_started(request: HttpRequest, slug: str, start: Callable[[], Replay]) -> HttpResponse:
    """Start a replay or a suite run and go to its page; a refusal is said on the workflow's card."""
    try:
        replay = start()
    except ApplicationError as exc:
        return _card_error(request, slug, exc.message, exc.status_code)
    url = reverse("agent:replay-detail", args=[replay.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_GET
@login_required
def workflow_versions(request: HttpRequest, slug: str) -> HttpResponse:
    _require_member(request)
    workflow = get_object_or_404(Workflow, slug=slug)
    context = {
        "workflow": workflow,
        "rows": version_rows(workflow=workflow),
        "cases": regression_case_list(workflow=workflow),
        "replays": replay_list(workflow=workflow),
        "is_admin": is_admin(request.user),
        "replay_form": ReplayForm(),
    }
    return render(request, "agent/workflow_versions.html", context)


@require_POST
@login_required
def workflow_replay(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = _get_workflow_for_admin(request, slug)
    form = ReplayForm(request.POST)
    if not form.is_valid():
        return _card_error(request, slug, first_error(form), 400)
    options = form.cleaned_data
    return _replay_started(request, slug, lambda: replay_start(workflow=workflow, user=request.user, **options))


@require_POST
@login_required
def workflow_suite(request: HttpRequest, slug: str) -> HttpResponse:
    workflow = _get_workflow_for_admin(request, slug)
    return _replay_started(request, slug, lambda: suite_run_request(workflow=workflow, user=request.user))


@require_GET
@login_required
def replay_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_member(request)
    detail = replay_get(replay_id=pk)
    if detail is None:
        raise Http404("No such replay.")
    template = f"{REPLAY_TEMPLATE}#replay-body" if request.htmx else REPLAY_TEMPLATE
    # Cases with no recorded run are not failures, but they do not pass either (and still block promotion): said.
    skipped = sum(1 for item in detail.items if item.case_result == ReplayItem.CaseResult.SKIPPED)
    return render(request, template, {"replay": detail.replay, "items": detail.items, "skipped": skipped})


@require_GET
@login_required
def gaps(request: HttpRequest) -> HttpResponse:
    _require_member(request)
    form = GapsForm(request.GET or {"days": 90})
    days = form.cleaned_data["days"] if form.is_valid() else 90
    template = "agent/knowledge_gaps.html#gaps-body" if request.htmx else "agent/knowledge_gaps.html"
    return render(request, template, {"form": form, "groups": knowledge_gaps(days=days), "days": days})


@require_GET
@login_required
def gaps_csv(request: HttpRequest) -> HttpResponse:
    _require_member(request)
    form = GapsForm(request.GET or {"days": 90})
    if not form.is_valid():
        return HttpResponse(first_error(form), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="knowledge-gaps.csv"'
    csv.writer(response).writerows(knowledge_gap_rows(knowledge_gaps(days=form.cleaned_data["days"])))
    return response
