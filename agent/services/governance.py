"""Governance: workflow phases (promotion, demotion, the kill switch), workflow configuration and ratings."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from agent.lifecycle import RUN_FINAL
from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from agent.permissions import admin_required, reviewer_required
from agent.suites import regression_case_from_rating
from agentconsole.errors import ApplicationError, ConflictError
from audit.services import audit_event_record

PHASE_CHANGE_NEEDS_REASON = "Say why: every phase change is audited with its reason."
PHASE_UNCHANGED = "The workflow is already in the {phase} phase."
AUTONOMY_CRITERIA_UNMET = "Not yet ready to run alone: {unmet}. An admin may override with a reason."
TRIAGE_CRITERIA_UNMET = "Not yet ready to act in triage: {unmet}. An admin may override with a reason."
RATING_VALUE_INVALID = "A rating is thumbs up (1) or thumbs down (-1)."
RATING_TARGET_INVALID = "Rate exactly one thing: a proposed action, or a drafted note or reply."


@transaction.atomic
def workflow_phase_change(
    *, workflow: Workflow, phase: str, user: AbstractBaseUser, reason: str, override: bool = False
) -> Workflow:
    """Promote or demote a workflow. A promotion (to triage or to autonomous) needs the evidence of the version in
    force to meet that phase's criteria and the version to pass its regression suite, unless an admin overrides —
    which is recorded with the unmet criteria. Demoting an autonomous workflow drops its runs in flight to triage,
    as the kill switch does, so none of them runs another write alone."""
    from agent.versions import is_promotion, promotion_unmet, workflow_version_ensure

    admin_required(user)
    if not reason.strip():
        raise ApplicationError(PHASE_CHANGE_NEEDS_REASON)
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.phase == phase:
        raise ConflictError(PHASE_UNCHANGED.format(phase=phase))
    unmet: list[str] = []
    version_number = None
    if is_promotion(current=workflow.phase, target=phase):
        # Gated on the version that would run now (its own evidence and regression suite), never on a lifetime sum.
        version = workflow_version_ensure(workflow=workflow)
        version_number = version.number
        unmet = promotion_unmet(version=version, phase=phase)
        if unmet and not override:
            template = AUTONOMY_CRITERIA_UNMET if phase == Workflow.Phase.AUTONOMOUS else TRIAGE_CRITERIA_UNMET
            raise ConflictError(template.format(unmet="; ".join(unmet)), extra={"unmet": unmet})
    previous = workflow.phase
    workflow.phase = phase
    workflow.full_clean()
    workflow.save(update_fields=["phase", "updated_at"])
    if previous == Workflow.Phase.AUTONOMOUS:
        # As the kill switch does: the workflow's runs in flight stop running writes alone from this commit on.
        AgentRun.objects.filter(workflow=workflow, phase=Workflow.Phase.AUTONOMOUS).exclude(
            status__in=RUN_FINAL
        ).update(phase=Workflow.Phase.TRIAGE)
    audit_event_record(
        verb="workflow.phase_changed",
        obj=workflow,
        payload={
            "from": previous,
            "to": phase,
            "reason": reason.strip(),
            "override": bool(unmet),
            "unmet": unmet,
            "version": version_number,
        },
        user=user,
    )
    return workflow


@transaction.atomic
def autonomy_stop_all(*, user: AbstractBaseUser, reason: str) -> int:
    """The kill switch: every autonomous workflow drops to triage at once, and so do runs in flight, so no
    pre-approved write runs after this commits. Returns how many workflows were stopped."""
    admin_required(user)
    if not reason.strip():
        raise ApplicationError(PHASE_CHANGE_NEEDS_REASON)
    workflows = list(Workflow.objects.select_for_update().filter(phase=Workflow.Phase.AUTONOMOUS))
    for workflow in workflows:
        workflow.phase = Workflow.Phase.TRIAGE
        workflow.save(update_fields=["phase", "updated_at"])
        audit_event_record(
            verb="workflow.phase_changed",
            obj=workflow,
            payload={"from": "autonomous", "to": "triage", "reason": reason.strip(), "stop_autonomy": True},
            user=user,
        )
    AgentRun.objects.filter(phase=Workflow.Phase.AUTONOMOUS).exclude(status__in=RUN_FINAL).update(
        phase=Workflow.Phase.TRIAGE
    )
    return len(workflows)


@transaction.atomic
def rating_set(
    *,
    user: AbstractBaseUser,
    value: int,
    comment: str = "",
    action: ProposedAction | None = None,
    step: Step | None = None,
) -> Rating:
    """Thumbs up or down on a proposed action (dry runs included) or a drafted note or reply; one per person and
    thing, changed by rating again."""
    reviewer_required(user)
    if value not in (Rating.Value.UP, Rating.Value.DOWN):
        raise ApplicationError(RATING_VALUE_INVALID)
    if (action is None) == (step is None):
        raise ApplicationError(RATING_TARGET_INVALID)
    rating, _ = Rating.objects.update_or_create(
        user=user, action=action, step=step, defaults={"value": value, "comment": comment.strip()}
    )
    rating_run_mark(rating=rating)
    audit_event_record(
        verb="rating.set",
        obj=rating,
        payload={"value": value, "action": action and action.pk, "step": step and step.pk},
        user=user,
    )
    regression_case_from_rating(rating=rating)  # a thumbs-down becomes a regression case
    return rating


def rating_run_mark(*, rating: Rating) -> None:
    """Mark the run of what was rated as rated (AgentRun.rated, which the tickets view's "Shadow drafts to rate"
    reads): one UPDATE, none when it is marked already. A rating never leaves its run, nor is it deleted but with it."""
    run_id = rating.action.run_id if rating.action_id else rating.step.run_id
    AgentRun.objects.filter(pk=run_id, rated=False).update(rated=True)


POLICY_FIELDS = ("tools", "preapproved_tools", "tool_limits", "enabled", "playbook", "runbook")
NEW_WORKFLOW_NOT_SHADOW = "A new workflow starts in the shadow phase; promote it on the workflows page."
PHASE_NOT_EDITABLE = "A workflow's phase changes only by promotion or demotion on the workflows page, with a reason."


@transaction.atomic
def workflow_save(*, workflow: Workflow, changed_fields: list[str], user: AbstractBaseUser) -> Workflow:
    """Save a workflow edited as configuration (the Django admin); changes to what may run alone are audited.
    Its phase is not configuration: a new workflow starts in shadow, and only workflow_phase_change moves it."""
    from agent.versions import workflow_version_ensure

    before = Workflow.objects.filter(pk=workflow.pk).values("phase", *POLICY_FIELDS).first() if workflow.pk else None
    if before is None and workflow.phase != Workflow.Phase.SHADOW:
        raise ConflictError(NEW_WORKFLOW_NOT_SHADOW)
    if before is not None and workflow.phase != before["phase"]:
        raise ConflictError(PHASE_NOT_EDITABLE)
    workflow.full_clean()
    workflow.save()
    changed = [name for name in POLICY_FIELDS if name in changed_fields]
    workflow_version_ensure(workflow=workflow)  # a changed runbook or playbook is a new version (and a suite run)
    if before is None:
        audit_event_record(verb="workflow.created", obj=workflow, payload={"phase": workflow.phase}, user=user)
    if changed:
        audit_event_record(
            verb="workflow.policy_changed",
            obj=workflow,
            payload={
                name: {"from": before.get(name) if before else None, "to": getattr(workflow, name)} for name in changed
            },
            user=user,
        )
    return workflow
