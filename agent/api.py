"""The agent's JSON API: runs and their transcripts, proposed actions and their decisions, workflows."""

# No `from __future__ import annotations` here: @paginate wraps the handlers, and ninja then resolves their
# string annotations in ninja's own module namespace, where the filter schemas do not exist.

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import LimitOffsetPagination, paginate

from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from agent.schemas import (
    ActionApproveIn,
    ActionFilterIn,
    ActionOut,
    ActionRejectIn,
    ActionRespondIn,
    AutonomyStopIn,
    AutonomyStopOut,
    RatingIn,
    RatingOut,
    RunCloseIn,
    RunDetailOut,
    RunFilterIn,
    RunOut,
    RunTakeOverIn,
    WorkflowOut,
    WorkflowPhaseIn,
)
from agent.selectors import Evidence, autonomy_unmet_criteria, workflow_evidence, workflow_evidence_many
from agent.services import (
    agent_run_close,
    agent_run_take_over,
    autonomy_stop_all,
    proposed_action_approve,
    proposed_action_reject,
    proposed_action_respond,
    rating_set,
    workflow_phase_change,
)
from agentconsole.errors import NotFoundError
from console.auth import api_auth
from tickets.schemas import ErrorOut

NOT_FOUND = "No {kind} {key}."
PAGE_MAX = 100
ERRORS = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}

router = Router(tags=["agent"], auth=api_auth)


def _get(queryset: QuerySet, kind: str, **lookup: Any) -> Any:
    found = queryset.filter(**lookup).first()
    if found is None:
        raise NotFoundError(NOT_FOUND.format(kind=kind, key=next(iter(lookup.values()))))
    return found


# --- Reads. These selectors belong in agent/selectors.py; they live here because that file was not this
# change's to edit. Move them there when next touching it.


def _run_list(*, ticket: int | None, status: str | None) -> QuerySet[AgentRun]:
    runs = AgentRun.objects.select_related("workflow").order_by("-created_at", "-id")
    if ticket is not None:
        runs = runs.filter(ticket_id=ticket)
    if status:
        runs = runs.filter(status=status)
    return runs


def _action_list(*, status: str | None, run: int | None) -> QuerySet[ProposedAction]:
    actions = ProposedAction.objects.select_related("decided_by").order_by("created_at", "id")
    if status:
        actions = actions.filter(status=status)
    if run is not None:
        actions = actions.filter(run_id=run)
    return actions


def _workflow_out(workflow: Workflow, evidence: Evidence) -> dict[str, Any]:
    return {
        "slug": workflow.slug,
        "name": workflow.name,
        "description": workflow.description,
        "phase": workflow.phase,
        "enabled": workflow.enabled,
        "preapproved_tools": workflow.preapproved_tools,
        "tool_limits": workflow.tool_limits,
        "evidence": evidence,
        "unmet_autonomy_criteria": autonomy_unmet_criteria(evidence=evidence),
    }


# --- Runs -----------------------------------------------------------------------------------------------------


@router.get("/runs", response=list[RunOut], summary="Agent runs, newest first")
@paginate(LimitOffsetPagination, max_limit=PAGE_MAX)
def run_list(request: HttpRequest, filters: Query[RunFilterIn]) -> QuerySet[AgentRun]:
    return _run_list(ticket=filters.ticket, status=filters.status)


@router.get("/runs/{run_id}", response={200: RunDetailOut, **ERRORS}, summary="One run with its ordered steps")
def run_get(request: HttpRequest, run_id: int) -> AgentRun:
    steps = Prefetch("steps", queryset=Step.objects.order_by("index"))
    return _get(AgentRun.objects.select_related("workflow").prefetch_related(steps), "run", pk=run_id)


# --- Proposed actions -----------------------------------------------------------------------------------------


@router.get("/actions", response=list[ActionOut], summary="Proposed actions, oldest first")
@paginate(LimitOffsetPagination, max_limit=PAGE_MAX)
def action_list(request: HttpRequest, filters: Query[ActionFilterIn]) -> QuerySet[ProposedAction]:
    return _action_list(status=filters.status, run=filters.run)


@router.get("/actions/{action_id}", response={200: ActionOut, **ERRORS}, summary="One proposed action")
def action_get(request: HttpRequest, action_id: int) -> ProposedAction:
    return _get(ProposedAction.objects.select_related("decided_by"), "action", pk=action_id)


@router.post("/actions/{action_id}/approve", response={200: ActionOut, **ERRORS}, summary="Approve, maybe edited")
def action_approve(request: HttpRequest, action_id: int, payload: ActionApproveIn) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_approve(action=action, user=request.user, args=payload.args)


@router.post("/actions/{action_id}/reject", response={200: ActionOut, **ERRORS}, summary="Reject with a reason")
def action_reject(request: HttpRequest, action_id: int, payload: ActionRejectIn) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_reject(action=action, user=request.user, reason=payload.reason)


@router.post(
    "/actions/{action_id}/respond", response={200: ActionOut, **ERRORS}, summary="Answer with feedback instead"
)
def action_respond(request: HttpRequest, action_id: int, payload: ActionRespondIn) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_respond(action=action, user=request.user, feedback=payload.feedback)


@router.post("/runs/{run_id}/take-over", response={200: RunOut, **ERRORS}, summary="End the run; the ticket is yours")
def run_take_over(request: HttpRequest, run_id: int, payload: RunTakeOverIn) -> AgentRun:
    run = _get(AgentRun.objects.all(), "run", pk=run_id)
    return agent_run_take_over(run=run, user=request.user, reason=payload.reason)


@router.post("/runs/{run_id}/close", response={200: RunOut, **ERRORS}, summary="Close an escalation with an outcome")
def run_close(request: HttpRequest, run_id: int, payload: RunCloseIn) -> AgentRun:
    run = _get(AgentRun.objects.all(), "run", pk=run_id)
    return agent_run_close(run=run, user=request.user, outcome=payload.outcome, note=payload.note)


@router.post("/actions/{action_id}/rate", response={200: RatingOut, **ERRORS}, summary="Thumbs up or down")
def action_rate(request: HttpRequest, action_id: int, payload: RatingIn) -> Rating:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return rating_set(user=request.user, value=payload.value, comment=payload.comment, action=action)


@router.post("/steps/{step_id}/rate", response={200: RatingOut, **ERRORS}, summary="Rate a drafted note or reply")
def step_rate(request: HttpRequest, step_id: int, payload: RatingIn) -> Rating:
    step = _get(Step.objects.all(), "step", pk=step_id)
    return rating_set(user=request.user, value=payload.value, comment=payload.comment, step=step)


# --- Workflows ------------------------------------------------------------------------------------------------


@router.get("/workflows", response=list[WorkflowOut], summary="Workflows with their evidence")
@paginate(LimitOffsetPagination, max_limit=PAGE_MAX)
def workflow_list(request: HttpRequest) -> list[dict[str, Any]]:
    # Admins curate a handful of workflows: evidence for all of them is a fixed number of queries either way.
    workflows = list(Workflow.objects.order_by("name", "id"))
    evidence = workflow_evidence_many(workflow_ids=[workflow.pk for workflow in workflows])
    return [_workflow_out(workflow, evidence[workflow.pk]) for workflow in workflows]


@router.post("/workflows/{slug}/phase", response={200: WorkflowOut, **ERRORS}, summary="Change a workflow's phase")
def workflow_phase(request: HttpRequest, slug: str, payload: WorkflowPhaseIn) -> dict[str, Any]:
    workflow = _get(Workflow.objects.all(), "workflow", slug=slug)
    workflow = workflow_phase_change(
        workflow=workflow, phase=payload.phase, user=request.user, reason=payload.reason, override=payload.override
    )
    return _workflow_out(workflow, workflow_evidence(workflow=workflow))


@router.post("/autonomy/stop", response={200: AutonomyStopOut, **ERRORS}, summary="Stop every autonomous workflow")
def autonomy_stop(request: HttpRequest, payload: AutonomyStopIn) -> dict[str, int]:
    return {"stopped_workflows": autonomy_stop_all(user=request.user, reason=payload.reason)}
