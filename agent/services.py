"""Every write to agent runs goes through here."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from agent.models import AgentRun, Workflow
from agent.selectors import workflow_match
from agentconsole.errors import InvalidTransition
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.models import Ticket

RUN_TRANSITION_NOT_ALLOWED = "A run cannot move from {current} to {target}."

_RUN_TRANSITIONS: dict[str, set[str]] = {
    AgentRun.Status.QUEUED: {AgentRun.Status.RUNNING, AgentRun.Status.FAILED, AgentRun.Status.ESCALATED},
    AgentRun.Status.RUNNING: {
        AgentRun.Status.AWAITING_APPROVAL,
        AgentRun.Status.COMPLETED,
        AgentRun.Status.ESCALATED,
        AgentRun.Status.FAILED,
    },
    AgentRun.Status.AWAITING_APPROVAL: {
        AgentRun.Status.RUNNING,
        AgentRun.Status.ESCALATED,
        AgentRun.Status.FAILED,
    },
    AgentRun.Status.COMPLETED: set(),
    AgentRun.Status.ESCALATED: set(),
    AgentRun.Status.FAILED: set(),
}
_FINAL = {AgentRun.Status.COMPLETED, AgentRun.Status.ESCALATED, AgentRun.Status.FAILED}


def agent_run_create_for_new_ticket(*, ticket: Ticket) -> AgentRun | None:
    """Create the one automatic run of a new ticket and enqueue it once the transaction commits.

    Returns None when the ticket already has its automatic run (the partial unique constraint decides, so two
    concurrent deliveries cannot both create one).
    """
    from agent.tasks import agent_run_execute_task  # tasks import services; import late to avoid a cycle

    workflow = workflow_match(ticket=ticket)
    try:
        with transaction.atomic():
            run = AgentRun.objects.create(
                ticket=ticket,
                workflow=workflow,
                phase=workflow.phase if workflow else Workflow.Phase.TRIAGE,
                trigger=AgentRun.Trigger.TICKET_CREATED,
            )
    except IntegrityError:
        return None
    audit_event_record(
        verb="run.queued",
        obj=run,
        payload={"ticket": ticket.pk, "workflow": workflow.slug if workflow else None, "phase": run.phase},
        actor_kind=AuditEvent.ActorKind.SYSTEM,
    )
    transaction.on_commit(lambda: agent_run_execute_task.delay(run.pk))
    return run


@transaction.atomic
def agent_run_transition(*, run: AgentRun, status: str, reason: str = "") -> AgentRun:
    """Move a run along its lifecycle, audited; anything the lifecycle does not allow raises."""
    run = AgentRun.objects.select_for_update().get(pk=run.pk)
    if status not in _RUN_TRANSITIONS[run.status]:
        raise InvalidTransition(RUN_TRANSITION_NOT_ALLOWED.format(current=run.status, target=status))
    previous = run.status
    run.status = status
    run.status_reason = reason
    now = timezone.now()
    if status == AgentRun.Status.RUNNING and run.started_at is None:
        run.started_at = now
    if status in _FINAL:
        run.finished_at = now
    run.full_clean()
    run.save(update_fields=["status", "status_reason", "started_at", "finished_at", "updated_at"])
    audit_event_record(
        verb="run.status_changed",
        obj=run,
        payload={"from": previous, "to": status, "reason": reason},
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    return run
