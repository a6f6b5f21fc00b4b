"""Runs start here: a new ticket, a customer's comment on a ticket whose run ended, or by hand."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import transaction

from agent.lifecycle import RUN_CLOSABLE, RUN_FINAL
from agent.models import AgentRun, Workflow
from agent.selectors import WorkflowChoice, workflow_choice
from agent.services.runs import agent_run_dispatch_prepare, agent_run_publish_on_commit
from agentconsole.rows import row_insert_unless_taken
from audit.models import AuditEvent
from audit.services import audit_event_record
from tickets.helpdesk import ticket_refresh_when_changed
from tickets.models import Ticket, TicketComment
from tickets.services.webhooks import IngestResult, zendesk_event_ingest
from tickets.zendesk_webhook import ParsedEvent


def _run_queue(
    *,
    ticket: Ticket,
    choice: WorkflowChoice,
    phase: str,
    trigger: str,
    actor_kind: str,
    payload: dict[str, Any],
    trigger_comment: TicketComment | None = None,
) -> AgentRun | None:
    """Insert a run that starts on its own and dispatch it: one INSERT that carries its dispatch (the outbox; the
    message is sent once the transaction commits, or by the reconciler if the broker is down then), and its
    `run.queued` audit entry. None, and nothing written, when a unique constraint says the run exists already (one
    automatic run per new ticket, one follow-up per comment), even one another delivery is inserting right now."""
    run = AgentRun(
        ticket=ticket,
        workflow=choice.workflow,
        phase=phase,
        matched_on=choice.matched_on,
        trigger=trigger,
        trigger_comment=trigger_comment,
    )
    token = agent_run_dispatch_prepare(run)
    if not row_insert_unless_taken(run):
        return None
    audit_event_record(
        verb="run.queued",
        obj=run,
        payload={
            "ticket": ticket.pk,
            "workflow": choice.workflow.slug if choice.workflow else None,
            "phase": phase,
            **payload,
            "matched_on": choice.matched_on,
        },
        actor_kind=actor_kind,
    )
    agent_run_publish_on_commit(run=run, token=token, new=True)
    return run


def agent_run_create_for_new_ticket(*, ticket: Ticket) -> AgentRun | None:
    """Create the one automatic run of a new ticket and dispatch it (the message is sent once the transaction
    commits; if the broker is down then, the reconciler sends it later).

    Returns None when the ticket already has its automatic run (the partial unique constraint decides, so two
    concurrent deliveries cannot both create one).
    """
    choice = workflow_choice(ticket=ticket)
    return _run_queue(
        ticket=ticket,
        choice=choice,
        phase=choice.phase,
        trigger=AgentRun.Trigger.TICKET_CREATED,
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        payload={},
    )


def agent_run_on_customer_comment(*, ticket: Ticket, comment: TicketComment) -> AgentRun | None:
    """A customer wrote on the ticket. A run still working (queued, running, waiting for a reviewer) reads the
    comment on its next turn and shows it to the reviewer: nothing to start. A ticket whose runs have all ended
    gets one follow-up run, which sees every earlier run's findings and replies — unless a reviewer took it over
    and has not closed it; after an escalation, or on a ticket a reviewer holds, the follow-up acts at most in
    triage. Returns the follow-up, if any.

    Called inside the webhook's transaction with the ticket row locked, so two comments arriving at once cannot
    both start a run; the unique trigger comment makes one follow-up per comment, however often it is delivered.
    """
    runs = AgentRun.objects.filter(ticket=ticket).order_by("-created_at", "-id")
    latest = runs.first()
    if latest is None:
        return None  # the ticket's first run (ticket.created) has not been created yet; it will read the comment
    active = runs.exclude(status__in=RUN_FINAL).first()
    if active is not None:
        audit_event_record(
            verb="run.comment_joined",
            obj=active,
            payload={"comment": comment.pk, "status": active.status},
            actor_kind=AuditEvent.ActorKind.WEBHOOK,
        )
        return None
    if latest.status == AgentRun.Status.TAKEN_OVER and not latest.outcome:
        # A reviewer stopped the agent and works the ticket: the comment is theirs to answer.
        audit_event_record(
            verb="run.follow_up_skipped",
            obj=latest,
            payload={"comment": comment.pk, "why": "a reviewer took the ticket over"},
            actor_kind=AuditEvent.ActorKind.WEBHOOK,
        )
        return None
    choice = workflow_choice(ticket=ticket)  # a workflow the customer's words alone chose runs at most in triage
    phase = choice.phase
    people_have_it = latest.status in RUN_CLOSABLE or ticket.assignee_id
    if people_have_it and phase == Workflow.Phase.AUTONOMOUS:
        phase = Workflow.Phase.TRIAGE  # people have the ticket now: the agent gathers context, it does not act alone
    return _run_queue(
        ticket=ticket,
        choice=choice,
        phase=phase,
        trigger=AgentRun.Trigger.CUSTOMER_COMMENT,
        trigger_comment=comment,
        actor_kind=AuditEvent.ActorKind.WEBHOOK,
        payload={"follow_up_of": latest.pk, "comment": comment.pk},
    )


def agent_run_create_manual(*, ticket: Ticket) -> AgentRun:
    """A run started by hand (debugging, re-runs); it is not enqueued."""
    choice = workflow_choice(ticket=ticket)
    run = AgentRun.objects.create(
        ticket=ticket,
        workflow=choice.workflow,
        phase=choice.phase,
        matched_on=choice.matched_on,
        trigger=AgentRun.Trigger.MANUAL,
    )
    audit_event_record(
        verb="run.queued", obj=run, payload={"ticket": ticket.pk, "manual": True, "matched_on": choice.matched_on}
    )
    return run


@transaction.atomic
def zendesk_event_receive(*, parsed: ParsedEvent) -> IngestResult:
    """A verified Zendesk event: tickets stores it and applies it to its ticket; the agent then starts the run it
    calls for (a new ticket, or a customer's comment on a ticket whose runs have ended — a comment on a run still
    in progress joins its context). One transaction: a refused run leaves no half-applied event behind."""
    result = zendesk_event_ingest(parsed=parsed)
    if result.ticket is None or result.duplicate or not result.handled:
        return result
    run = None
    if result.customer_comment is not None:
        run = agent_run_on_customer_comment(ticket=result.ticket, comment=result.customer_comment)
    if result.ticket_created:
        run = agent_run_create_for_new_ticket(ticket=result.ticket)
    ticket_refresh_when_changed(ticket=result.ticket, new_run=run is not None)
    return replace(result, run_id=run.pk if run else None)
