"""The agent's JSON API: runs and their transcripts, proposed actions and their decisions, workflows."""

# No `from __future__ import annotations` here: @paginate wraps the handlers, and ninja then resolves their
# string annotations in ninja's own module namespace, where the filter schemas do not exist.

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Field, Path, Query, Router, Schema
from ninja.pagination import paginate

from agent.dashboard import WORKFLOW_ORDER, WorkflowCard, workflow_cards
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
from agent.selectors import (
    ACTION_ORDER,
    RUN_ORDER,
    agent_run_detail_queryset,
    agent_run_list,
    proposed_action_list,
)
from agent.selectors.evidence import autonomy_unmet_criteria
from agent.services.actions import proposed_action_approve, proposed_action_reject, proposed_action_respond
from agent.services.governance import autonomy_stop_all, rating_set, workflow_phase_change
from agent.services.runs import agent_run_close, agent_run_take_over
from agent.versions import next_phase
from agent.webhook import zendesk_webhook
from agentconsole.errors import NotFoundError
from agentconsole.pagination import KeysetPagination, keyset_response
from agentconsole.schemas import ONE_ERRORS, READ_ERRORS, WRITE_ERRORS
from tickets.schemas import ErrorOut, WebhookAcceptedOut

NOT_FOUND = "No {kind} {key}."
PAGE_MAX = 100
MAX_ID = 2**63 - 1  # ids are bigints
SLUG_PATTERN = r"^[-a-zA-Z0-9_]{1,64}$"

# Every route needs a reviewer or an admin (token or session): the API sets that for every router. The webhook
# is the exception: it proves itself by its signature.
router = Router(tags=["agent"])


def _get(queryset: QuerySet, kind: str, **lookup: Any) -> Any:
    found = queryset.filter(**lookup).first()
    if found is None:
        raise NotFoundError(NOT_FOUND.format(kind=kind, key=next(iter(lookup.values()))))
    return found


def _workflow_out(card: WorkflowCard) -> dict[str, Any]:
    """A workflow with the evidence of its version in force, as the workflows page shows it."""
    workflow, evidence = card.workflow, card.evidence
    return {
        "slug": workflow.slug,
        "name": workflow.name,
        "description": workflow.description,
        "phase": workflow.phase,
        "enabled": workflow.enabled,
        "tools": workflow.tools,
        "preapproved_tools": workflow.preapproved_tools,
        "tool_limits": workflow.tool_limits,
        "evidence": evidence,
        "unmet_autonomy_criteria": autonomy_unmet_criteria(evidence=evidence),
        "version": card.version.number if card.version is not None and card.version_current else None,
        "next_phase": next_phase(workflow.phase),
        "unmet_promotion_criteria": card.unmet,
    }


# --- Runs -----------------------------------------------------------------------------------------------------


@router.get("/runs", response={200: list[RunOut], **READ_ERRORS}, summary="Agent runs, newest first")
@paginate(KeysetPagination, ordering=RUN_ORDER, max_limit=PAGE_MAX)
def run_list(request: HttpRequest, filters: Query[RunFilterIn]) -> QuerySet[AgentRun]:
    return agent_run_list(ticket=filters.ticket, status=filters.status)


@router.get("/runs/{run_id}", response={200: RunDetailOut, **ONE_ERRORS}, summary="One run with its ordered steps")
def run_get(request: HttpRequest, run_id: int = Path(..., ge=1, le=MAX_ID)) -> AgentRun:
    return _get(agent_run_detail_queryset(), "run", pk=run_id)


# --- Proposed actions -----------------------------------------------------------------------------------------


@router.get("/actions", response={200: list[ActionOut], **READ_ERRORS}, summary="Proposed actions, oldest first")
@paginate(KeysetPagination, ordering=ACTION_ORDER, max_limit=PAGE_MAX)
def action_list(request: HttpRequest, filters: Query[ActionFilterIn]) -> QuerySet[ProposedAction]:
    return proposed_action_list(status=filters.status, run=filters.run)


@router.get("/actions/{action_id}", response={200: ActionOut, **ONE_ERRORS}, summary="One proposed action")
def action_get(request: HttpRequest, action_id: int = Path(..., ge=1, le=MAX_ID)) -> ProposedAction:
    return _get(proposed_action_list(), "action", pk=action_id)


@router.post("/actions/{action_id}/approve", response={200: ActionOut, **WRITE_ERRORS}, summary="Approve, maybe edited")
def action_approve(request: HttpRequest, action_id: int, payload: ActionApproveIn) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_approve(action=action, user=request.user, args=payload.args)


@router.post("/actions/{action_id}/reject", response={200: ActionOut, **WRITE_ERRORS}, summary="Reject with a reason")
def action_reject(request: HttpRequest, action_id: int, payload: ActionRejectIn) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_reject(action=action, user=request.user, reason=payload.reason)


@router.post(
    "/actions/{action_id}/respond", response={200: ActionOut, **WRITE_ERRORS}, summary="Answer with feedback instead"
)
def action_respond(
    request: HttpRequest, payload: ActionRespondIn, action_id: int = Path(..., ge=1, le=MAX_ID)
) -> ProposedAction:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return proposed_action_respond(action=action, user=request.user, feedback=payload.feedback)


@router.post(
    "/runs/{run_id}/take-over", response={200: RunOut, **WRITE_ERRORS}, summary="End the run; the ticket is yours"
)
def run_take_over(request: HttpRequest, payload: RunTakeOverIn, run_id: int = Path(..., ge=1, le=MAX_ID)) -> AgentRun:
    run = _get(AgentRun.objects.all(), "run", pk=run_id)
    return agent_run_take_over(run=run, user=request.user, reason=payload.reason)


@router.post(
    "/runs/{run_id}/close", response={200: RunOut, **WRITE_ERRORS}, summary="Close an escalation with an outcome"
)
def run_close(request: HttpRequest, payload: RunCloseIn, run_id: int = Path(..., ge=1, le=MAX_ID)) -> AgentRun:
    run = _get(AgentRun.objects.all(), "run", pk=run_id)
    return agent_run_close(run=run, user=request.user, outcome=payload.outcome, note=payload.note)


@router.post("/actions/{action_id}/rate", response={200: RatingOut, **WRITE_ERRORS}, summary="Thumbs up or down")
def action_rate(request: HttpRequest, action_id: int, payload: RatingIn) -> Rating:
    action = _get(ProposedAction.objects.all(), "action", pk=action_id)
    return rating_set(user=request.user, value=payload.value, comment=payload.comment, action=action)


@router.post("/steps/{step_id}/rate", response={200: RatingOut, **WRITE_ERRORS}, summary="Rate a drafted note or reply")
def step_rate(request: HttpRequest, step_id: int, payload: RatingIn) -> Rating:
    step = _get(Step.objects.all(), "step", pk=step_id)
    return rating_set(user=request.user, value=payload.value, comment=payload.comment, step=step)


# --- Workflows ------------------------------------------------------------------------------------------------


class WorkflowPageOut(Schema):
    items: list[WorkflowOut]
    next: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")


@router.get("/workflows", response={200: WorkflowPageOut, **READ_ERRORS}, summary="Workflows with their evidence")
def workflow_list(request: HttpRequest, page: Query[KeysetPagination.Input]) -> dict[str, Any]:
    """Paged like every list (by keyset on name and id); the evidence is gathered for the page's workflows only."""
    found = keyset_response(
        Workflow.objects.all(), ordering=WORKFLOW_ORDER, limit=min(page.limit, PAGE_MAX), after=page.after,
        request=request,
    )  # fmt: skip
    cards = workflow_cards(workflows=found["items"])
    return {"items": [_workflow_out(card) for card in cards], "next": found["next"]}


@router.post(
    "/workflows/{slug}/phase", response={200: WorkflowOut, **WRITE_ERRORS}, summary="Change a workflow's phase"
)
def workflow_phase(
    request: HttpRequest, payload: WorkflowPhaseIn, slug: str = Path(..., pattern=SLUG_PATTERN)
) -> dict[str, Any]:
    workflow = _get(Workflow.objects.all(), "workflow", slug=slug)
    workflow = workflow_phase_change(
        workflow=workflow, phase=payload.phase, user=request.user, reason=payload.reason, override=payload.override
    )
    return _workflow_out(workflow_cards(slug=workflow.slug)[0])


@router.post(
    "/autonomy/stop", response={200: AutonomyStopOut, **WRITE_ERRORS}, summary="Stop every autonomous workflow"
)
def autonomy_stop(request: HttpRequest, payload: AutonomyStopIn) -> dict[str, int]:
    return {"stopped_workflows": autonomy_stop_all(user=request.user, reason=payload.reason)}


# --- Ticket intake: the helpdesk's webhook, answered by agent.webhook's middleware ahead of the API; documented here.


@router.post(
    "/webhooks/zendesk",
    response={202: WebhookAcceptedOut, 400: ErrorOut, 401: ErrorOut, 413: ErrorOut},
    summary="Receive a signed Zendesk ticket event",
    description=(
        "Stores the event and answers 202; a worker applies it (the ticket, its comments, its run) right after. "
        "Signed with the X-Zendesk-Webhook-Signature headers; no session or token."
    ),
    auth=None,
    tags=["webhooks"],
)
def zendesk_webhook_documented(request: HttpRequest) -> HttpResponse:
    # Requests are answered by agent.webhook's middleware before they get here; this route is what the OpenAPI
    # schema shows, and answers the same should the middleware be left out of MIDDLEWARE.
    return zendesk_webhook(request)
