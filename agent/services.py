"""Every write to agent runs goes through here."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from agent import telemetry
from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from agent.selectors import workflow_choice
from agent.suites import regression_case_capture, regression_case_from_rating
from agent.tools.base import Observation, Tool
from agentconsole.errors import ApplicationError, ConflictError, InvalidTransition, PermissionDeniedError
from audit.models import AuditEvent
from audit.services import audit_event_record, canonical_hash
from tickets.models import Ticket, TicketComment

if TYPE_CHECKING:
    from agent.llm import ModelTurn

logger = logging.getLogger(__name__)

RUN_TRANSITION_NOT_ALLOWED = "A run cannot move from {current} to {target}."
# Foreign keys a service sets from rows it loaded (or leaves as they were): full_clean() skips them, each would be a
# query for a row we hold. Uniqueness and constraints are the database's to enforce.
RUN_RELATIONS = ["ticket", "workflow", "trigger_comment", "closed_by"]
ACTION_RELATIONS = ["run", "step", "retry_of", "decided_by"]

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
    AgentRun.Status.TAKEN_OVER: set(),
    AgentRun.Status.FAILED: set(),
}
# A reviewer may take over any run that has not ended.
for _status in (AgentRun.Status.QUEUED, AgentRun.Status.RUNNING, AgentRun.Status.AWAITING_APPROVAL):
    _RUN_TRANSITIONS[_status].add(AgentRun.Status.TAKEN_OVER)
FINAL_STATUSES = frozenset(
    {AgentRun.Status.COMPLETED, AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER, AgentRun.Status.FAILED}
)


def agent_run_create_for_new_ticket(*, ticket: Ticket) -> AgentRun | None:
    """Create the one automatic run of a new ticket and dispatch it (the message is sent once the transaction
    commits; if the broker is down then, the reconciler sends it later).

    Returns None when the ticket already has its automatic run (the partial unique constraint decides, so two
    concurrent deliveries cannot both create one).
    """
    choice = workflow_choice(ticket=ticket)
    try:
        with transaction.atomic():
            run = AgentRun.objects.create(
                ticket=ticket,
                workflow=choice.workflow,
                phase=choice.phase,
                matched_on=choice.matched_on,
                trigger=AgentRun.Trigger.TICKET_CREATED,
            )
    except IntegrityError:
        return None
    audit_event_record(
        verb="run.queued",
        obj=run,
        payload={
            "ticket": ticket.pk,
            "workflow": choice.workflow.slug if choice.workflow else None,
            "matched_on": choice.matched_on,
            "phase": run.phase,
        },
        actor_kind=AuditEvent.ActorKind.SYSTEM,
    )
    agent_run_dispatch(run_id=run.pk, new=True)
    return run


# A run's first turn is sent at this priority, every later one at the default (0, the highest with Redis): a ticket in
# progress goes ahead of new tickets, so its time to resolution nears the sum of its model calls. SQS ignores it.
NEW_RUN_PRIORITY = 9


def agent_run_publish(*, run_id: int, token: str, priority: int | None = None) -> bool:
    """Send the message that advances a run. Never raises: a broker that is down is logged, and the reconciler
    sends the run again once the dispatch is stale (its token and time are already stored)."""
    from agent.tasks import agent_run_advance_task  # tasks import services; import late to avoid a cycle

    try:
        agent_run_advance_task.apply_async(args=(run_id, token), priority=priority)
    except Exception:  # any broker or serialisation failure: the outbox row is what makes this safe to swallow
        logger.warning("run %s: could not enqueue its next advance; the reconciler will", run_id, exc_info=True)
        return False
    return True


def agent_run_dispatch(*, run_id: int, new: bool = False) -> str:
    """Record that the run needs an advance (a new dispatch token supersedes any older message) and send the
    message once the surrounding transaction commits, or now outside one. A new run's message waits behind the
    next turns of runs in progress."""
    token = uuid.uuid4().hex
    AgentRun.objects.filter(pk=run_id).update(dispatch_token=token, dispatched_at=timezone.now())
    priority = NEW_RUN_PRIORITY if new else None
    transaction.on_commit(lambda: agent_run_publish(run_id=run_id, token=token, priority=priority), robust=True)
    return token


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
    active = runs.exclude(status__in=FINAL_STATUSES).first()
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
    workflow, phase = choice.workflow, choice.phase
    people_have_it = latest.status in (AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER) or ticket.assignee_id
    if people_have_it and phase == Workflow.Phase.AUTONOMOUS:
        phase = Workflow.Phase.TRIAGE  # people have the ticket now: the agent gathers context, it does not act alone
    try:
        with transaction.atomic():
            run = AgentRun.objects.create(
                ticket=ticket,
                workflow=workflow,
                phase=phase,
                trigger=AgentRun.Trigger.CUSTOMER_COMMENT,
                trigger_comment=comment,
                matched_on=choice.matched_on,
            )
    except IntegrityError:
        return None
    audit_event_record(
        verb="run.queued",
        obj=run,
        payload={
            "ticket": ticket.pk,
            "workflow": workflow.slug if workflow else None,
            "phase": phase,
            "follow_up_of": latest.pk,
            "comment": comment.pk,
            "matched_on": choice.matched_on,
        },
        actor_kind=AuditEvent.ActorKind.WEBHOOK,
    )
    # The outbox: sent after commit, or by the reconciler if the broker is down.
    agent_run_dispatch(run_id=run.pk, new=True)
    return run


@transaction.atomic
def agent_run_transition(
    *, run: AgentRun, status: str, reason: str = "", user: AbstractBaseUser | None = None
) -> AgentRun:
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
    if status in FINAL_STATUSES:
        run.finished_at = now
    # Only fields change here; the run's relations are loaded rows and its constraints the database enforces:
    # validating those costs three queries on every status change.
    run.full_clean(exclude=RUN_RELATIONS, validate_unique=False, validate_constraints=False)
    run.save(update_fields=["status", "status_reason", "started_at", "finished_at", "updated_at"])
    if status in FINAL_STATUSES:
        telemetry.run_finished(status=status, phase=run.phase)
    audit_event_record(
        verb="run.status_changed",
        obj=run,
        payload={"from": previous, "to": status, "reason": reason},
        user=user,
        actor_kind=None if user is not None else AuditEvent.ActorKind.AGENT,
    )
    return run


# --- The loop's writes ----------------------------------------------------------------------------------------

APPROVE_DRY_RUN = "A dry run is never executable; it can only be rated."
ACTION_ALREADY_DECIDED = "This action was already decided ({status})."
EDITED_ARGS_INVALID = "The edited arguments do not match the tool's schema."
EDITED_ARGS_OTHER_TENANT = "The edited arguments name another tenant than the ticket's."
REJECT_NEEDS_REASON = "Say why you reject it: the reason goes back to the agent."
NOT_A_REVIEWER = "Only reviewers and admins decide on proposed actions."
RESPOND_NEEDS_FEEDBACK = "Write the feedback the agent should continue from."
CLAIMED_BY_ANOTHER = "{name} has claimed this ticket. Take the claim first if you mean to decide it."
TAKE_OVER_ENDED = "This run has already ended ({status}); there is nothing to take over."
TAKEN_OVER_REASON = "Taken over by {name}{reason}"
OUTCOME_INVALID = "Choose an outcome: {choices}."
CLOSE_NOT_ESCALATED = "Only an escalated or taken-over run is closed with an outcome; this one is {status}."
ALREADY_CLOSED = "This escalation was already closed ({outcome})."


def agent_run_claim(*, run_id: int, lease_seconds: int) -> AgentRun | None:
    """Take the run for one advance. One conditional UPDATE: two workers can never both hold it, and a lease
    left by a crashed worker expires."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        AgentRun.objects.filter(
            pk=run_id,
            status__in=[AgentRun.Status.QUEUED, AgentRun.Status.RUNNING, AgentRun.Status.AWAITING_APPROVAL],
        )
        .filter(models.Q(lease_expires_at__isnull=True) | models.Q(lease_expires_at__lt=now))
        .update(lease_token=token, lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    if not claimed:
        return None
    return AgentRun.objects.select_related("ticket__tenant_link", "workflow").get(pk=run_id)


def agent_run_renew_lease(*, run_id: int, token: str, lease_seconds: int) -> bool:
    """Extend this worker's lease before the next slow call. False: the lease expired and another worker took the
    run, so this one must stop without touching it."""
    return bool(
        AgentRun.objects.filter(pk=run_id, lease_token=token).update(
            lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds)
        )
    )


def agent_run_release(*, run_id: int, token: str, active_ms: int) -> None:
    AgentRun.objects.filter(pk=run_id, lease_token=token).update(
        lease_token="", lease_expires_at=None, active_ms=models.F("active_ms") + active_ms
    )


def step_append(*, run: AgentRun, kind: str, content: str = "", **fields: Any) -> Step:
    """Persist one transcript entry now, so anyone watching sees it appear."""
    last = run.steps.order_by("-index").values_list("index", flat=True).first()
    step = Step(run=run, index=0 if last is None else last + 1, turn=run.turns, kind=kind, content=content, **fields)
    # The run is loaded and the database enforces the unique index: validating them here would cost a query
    # each on the hottest path of the loop.
    step.full_clean(exclude=["run"], validate_unique=False, validate_constraints=False)
    step.save()
    return step


@transaction.atomic
def agent_run_record_turn(*, run: AgentRun, turn: ModelTurn, engine: str, abnormal: str = "") -> bool:
    """Persist a model turn: its thought (with tokens and latency) and one action step per tool call. False, and
    nothing recorded, when this worker's lease is gone (the turn outlived it; the worker holding the run asks
    again): the check is the row lock this takes anyway, not one more statement.

    A turn that ended abnormally (`abnormal` says why: a guardrail, a token limit, a filter) is kept as one final
    step carrying the reason and none of its tool calls, so nothing it asked for can ever run."""
    run = AgentRun.objects.select_for_update().filter(pk=run.pk, lease_token=run.lease_token).first()
    if run is None:
        return False
    run.turns += 1
    run.tokens_in += turn.tokens_in
    run.tokens_out += turn.tokens_out
    run.cache_read_tokens += turn.cache_read_tokens
    run.cache_write_tokens += turn.cache_write_tokens
    run.engine = engine
    run.save(update_fields=["turns", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens", "engine",
                            "updated_at"])  # fmt: skip
    measured = {
        "latency_ms": turn.latency_ms,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "stop_reason": turn.stop_reason[:64],
    }
    if abnormal:
        calls = [{"name": c.name, "args": c.args} for c in turn.tool_calls]
        step_append(
            run=run,
            kind=Step.Kind.FINAL,
            content=turn.text,
            tool_output={"abnormal_stop": abnormal, "unused_tool_calls": calls},
            **measured,
        )
        return True
    if turn.tool_calls:
        step_append(run=run, kind=Step.Kind.THOUGHT, content=turn.text, **measured)
        for call in turn.tool_calls:
            step_append(
                run=run,
                kind=Step.Kind.ACTION,
                tool_name=call.name[:64],
                tool_call_id=call.id[:100],
                tool_input=call.args,
            )
    else:
        step_append(run=run, kind=Step.Kind.FINAL, content=turn.text, **measured)
    return True


@contextmanager
def tenant_budget_lock(*, tenant_id: str) -> Iterator[None]:
    """A transaction holding the tenant's budget lock: a pre-approval decision on a write and the action it creates
    commit together, and two runs of one tenant decide one after the other."""
    with transaction.atomic():
        if tenant_id and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"agent-console:budget:{tenant_id}"])
        yield


@transaction.atomic
def agent_run_await_decisions(*, run: AgentRun) -> bool:
    """Mark the run as waiting for reviewers, unless every proposal was decided meanwhile (a reviewer can approve
    while the turn is still being dispatched). True: it waits, and the decision will resume it; False: go on now.

    The run's row is locked, as the approve and reject services lock it before looking at the run's status: either
    the decision sees the run waiting and enqueues it, or this sees the decision."""
    locked = AgentRun.objects.select_for_update().get(pk=run.pk)
    if not locked.actions.filter(status=ProposedAction.Status.PENDING).exists():
        if locked.status == AgentRun.Status.AWAITING_APPROVAL:
            agent_run_transition(run=locked, status=AgentRun.Status.RUNNING, reason="Every proposal is decided.")
        return False
    if locked.status != AgentRun.Status.AWAITING_APPROVAL:
        agent_run_transition(
            run=locked, status=AgentRun.Status.AWAITING_APPROVAL, reason="A proposed action awaits a reviewer."
        )
    return True


def proposed_action_create(
    *,
    run: AgentRun,
    step: Step,
    tool: Tool,
    args: dict[str, Any],
    rationale: str,
    status: str,
    reason: str,
    retry_of: ProposedAction | None = None,
) -> ProposedAction:
    """Record a call the gate allowed, proposed or made a dry run; pre-approved calls say why. A repeat of an
    earlier call of the run (same tool and arguments) points at the first one and is sent with its key."""
    action = ProposedAction(
        run=run,
        step=step,
        retry_of=retry_of,
        tool=tool.name,
        tool_call_id=step.tool_call_id,
        args=args,
        args_hash=canonical_hash(args),
        rationale=rationale,
        risk=str(tool.risk),
        status=status,
        decision_reason=reason if status == ProposedAction.Status.APPROVED else "",
        approved_args_hash=canonical_hash(args) if status == ProposedAction.Status.APPROVED else "",
        decided_at=timezone.now() if status == ProposedAction.Status.APPROVED else None,
        sla_due_at=approval_sla_due(workflow=run.workflow) if status == ProposedAction.Status.PENDING else None,
    )
    # As in step_append: loaded foreign keys, and uniqueness the database enforces.
    action.full_clean(exclude=["run", "step", "retry_of"], validate_unique=False, validate_constraints=False)
    action.save()
    audit_event_record(
        verb=f"action.{status}",
        obj=action,
        payload={
            "tool": action.tool,
            "args_hash": action.args_hash,
            "reason": reason,
            "retry_of": retry_of.pk if retry_of else None,
        },
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    if status == ProposedAction.Status.PENDING:
        from agent.tasks import approval_notify_task, proposed_action_read_current_task

        # Both reach other systems (the Admin API, Slack, mail): never inside the loop's turn or a transaction.
        transaction.on_commit(lambda: proposed_action_read_current_task.delay(action.pk), robust=True)
        transaction.on_commit(lambda: approval_notify_task.delay(action.pk, "pending"), robust=True)
    return action


def proposed_action_read_current(*, action_id: int) -> ProposedAction | None:
    """Read, now, the state a pending call would change (its tool's read_current) and keep it on the proposal for
    the reviewer's diff. Outside any transaction: it calls the company's systems. A read failure is kept too."""
    from agent.tools import get_tool
    from agent.tools.base import ToolContext

    action = ProposedAction.objects.select_related("run__ticket__tenant_link").filter(pk=action_id).first()
    if action is None or action.status != ProposedAction.Status.PENDING:
        return action
    tool = get_tool(action.tool)
    if tool is None or not tool.can_read_current:
        return action
    ticket = action.run.ticket
    ctx = ToolContext(ticket_id=ticket.pk, tenant_id=ticket.tenant_id, run_id=action.run_id)
    observation = tool.invoke_read_current(action.args, ctx)
    data = observation.data if observation.ok and isinstance(observation.data, dict) else {}
    action.current_state = {
        "ok": observation.ok,
        "read_at": timezone.now().isoformat(),
        "fields": data.get("fields", []),
        "message": observation.message,
    }
    ProposedAction.objects.filter(pk=action.pk).update(current_state=action.current_state)
    return action


def approval_sla_due(*, workflow: Workflow | None, now: datetime | None = None) -> datetime | None:
    """When a proposal made now must be decided: the workflow's SLA, else APPROVAL_SLA_MINUTES; 0 means never.
    Fixed when the proposal is made, so changing a workflow's SLA does not move deadlines already running."""
    minutes = workflow.approval_sla_minutes if workflow and workflow.approval_sla_minutes is not None else None
    if minutes is None:
        minutes = settings.APPROVAL_SLA_MINUTES
    if not minutes:
        return None
    return (now or timezone.now()) + timedelta(minutes=minutes)


def proposed_action_start_execution(*, action: ProposedAction) -> ProposedAction:
    if action.execution_started_at is None:
        action.execution_started_at = timezone.now()
        action.save(update_fields=["execution_started_at"])
    return action


@transaction.atomic
def proposed_action_settle(
    *,
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None = None,
    reconciliation: Observation | None = None,
) -> ProposedAction:
    """Store how a call ended: executed (a write with its verifier's read-back), failed, or of unknown outcome
    (with what re-reading state said). A write that executed with no verification on record stays pending."""
    action = ProposedAction.objects.select_for_update().get(pk=action.pk)
    previous = action.status
    action.status = status
    action.execution_result = result.to_dict()
    action.executed_at = timezone.now()
    if verification is not None:
        action.verification = (
            ProposedAction.Verification.PASSED if verification.ok else ProposedAction.Verification.FAILED
        )
        action.verification_result = verification.to_dict()
    elif reconciliation is not None:
        action.verification_result = reconciliation.to_dict()
    elif status == ProposedAction.Status.EXECUTED and action.risk == ProposedAction.Risk.WRITE:
        action.verification = ProposedAction.Verification.PENDING
    action.save()
    audit_event_record(
        verb=f"action.{action.status}",
        obj=action,
        payload={
            "tool": action.tool,
            "args_hash": canonical_hash(action.args),
            "ok": result.ok,
            "error_type": result.error_type,
            "uncertain": result.uncertain,
            "verification": action.verification,
            "from": previous,
        },
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    return action


def _helpdesk_escalation(run: AgentRun, note: str) -> str:
    """Post the note and route to the humans pod. Outside any transaction: it may call Zendesk. The note carries a
    marker of the run, so an escalation interrupted after posting and resumed does not post it twice."""
    from tickets.helpdesk import HelpdeskError, helpdesk_for
    from tickets.snapshot import comment_marker

    helpdesk = helpdesk_for(run.ticket)
    try:
        # One escalation note per run, however often a crashed escalation is retried.
        helpdesk.add_private_note(run.ticket, note, marker=comment_marker(f"run-{run.pk}-escalation"))
        helpdesk.set_group(run.ticket, settings.HELPDESK_PODS["humans"])
    except HelpdeskError as exc:
        return f" (the helpdesk could not be updated: {exc.message})"
    return ""


def agent_run_escalate(*, run: AgentRun, reason: str) -> AgentRun:
    """Hand the ticket to humans: a private note saying why, routed to the humans pod, the run escalated."""
    problem = _helpdesk_escalation(run, f"Agent Console escalated this ticket to a human.\nWhy: {reason}")
    with transaction.atomic():
        step_append(run=run, kind=Step.Kind.FINAL, content=f"Escalated to humans: {reason}{problem}")
        run.refresh_from_db()
        return agent_run_transition(run=run, status=AgentRun.Status.ESCALATED, reason=reason)


def _dry_run_note(run: AgentRun, answer: str) -> str:
    lines = ["Agent Console (shadow phase) — nothing was executed. It would have made these calls:"]
    for number, action in enumerate(run.actions.filter(status=ProposedAction.Status.DRY_RUN), start=1):
        args = action.args.get("query") if action.tool == "run_sql" else json.dumps(action.args, sort_keys=True)
        lines.append(f"{number}. {action.tool} ({action.risk}): {args}")
        if action.rationale:
            lines.append(f"   why: {action.rationale}")
    lines.append(f"Summary: {answer}")
    return "\n".join(lines)


def agent_run_finish(*, run: AgentRun, answer: str) -> AgentRun:
    """The model is done. In shadow, its only output is a private note listing what it would have done."""
    if run.phase == Workflow.Phase.SHADOW:
        from tickets.helpdesk import HelpdeskError, helpdesk_for
        from tickets.snapshot import comment_marker

        try:
            helpdesk_for(run.ticket).add_private_note(
                run.ticket, _dry_run_note(run, answer), marker=comment_marker(f"run-{run.pk}-shadow-note")
            )
        except HelpdeskError as exc:
            return agent_run_escalate(run=run, reason=f"the shadow note could not be posted: {exc.message}")
    run.refresh_from_db()
    return agent_run_transition(run=run, status=AgentRun.Status.COMPLETED, reason=answer[:500])


def _require_reviewer(user: AbstractBaseUser) -> None:
    from console.roles import is_reviewer

    if not is_reviewer(user):
        raise PermissionDeniedError(NOT_A_REVIEWER)


def _enqueue_advance(run: AgentRun) -> None:
    agent_run_dispatch(run_id=run.pk)


def _resume_if_decided(action: ProposedAction) -> None:
    # The run's row is locked, as agent_run_await_decisions locks it: a decision made while the turn is still being
    # dispatched is either seen there, or finds the run waiting here and resumes it.
    run = AgentRun.objects.select_for_update().get(pk=action.run_id)
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        _enqueue_advance(run)


@transaction.atomic
def proposed_action_approve(
    *, action: ProposedAction, user: AbstractBaseUser, args: dict[str, Any] | None = None
) -> ProposedAction:
    """Approve exactly these args (optionally edited, validated, the model's originals kept). The run resumes
    in a worker; what executes must hash to what was approved."""
    from agent.tools import get_tool

    _require_reviewer(user)
    action = (
        ProposedAction.objects.select_for_update(of=("self",))
        .select_related("run__ticket__tenant_link", "run__ticket__assignee")
        .get(pk=action.pk)
    )
    if action.status == ProposedAction.Status.DRY_RUN:
        raise ConflictError(APPROVE_DRY_RUN)
    if action.status != ProposedAction.Status.PENDING:
        raise ConflictError(ACTION_ALREADY_DECIDED.format(status=action.get_status_display()))
    _require_not_claimed_by_another(action.run.ticket, user)
    if args is not None and args != action.args:
        tool = get_tool(action.tool)
        parsed = tool.parse_args(args) if tool else None
        if parsed is None or isinstance(parsed, Observation):
            raise ApplicationError(
                EDITED_ARGS_INVALID, extra={"errors": parsed.meta.get("errors", []) if parsed else []}
            )
        if "tenant_id" in args and args["tenant_id"] != action.run.ticket.tenant_id:
            raise ApplicationError(EDITED_ARGS_OTHER_TENANT)
        action.original_args = action.args
        action.args = args
        action.args_hash = canonical_hash(args)
    action.status = ProposedAction.Status.APPROVED
    action.approved_args_hash = action.args_hash
    action.decided_by = user
    action.decided_at = timezone.now()
    action.full_clean(exclude=ACTION_RELATIONS, validate_unique=False, validate_constraints=False)
    action.save()
    audit_event_record(
        verb="action.approved",
        obj=action,
        payload={"args": action.args, "args_hash": action.args_hash, "edited": action.original_args is not None},
        user=user,
    )
    telemetry.approval_decided(action, decision=action.status)
    if action.original_args is not None:
        regression_case_capture(action=action)  # the reviewer's correction becomes a regression case
    _resume_if_decided(action)
    return action


def _require_not_claimed_by_another(ticket: Ticket, user: AbstractBaseUser) -> None:
    """A ticket a reviewer claimed is theirs to decide: anyone else takes the claim first, on purpose."""
    if ticket.assignee_id is not None and ticket.assignee_id != user.pk:
        raise ConflictError(CLAIMED_BY_ANOTHER.format(name=ticket.assignee.get_username()))


def _decide_without_running(
    *, action: ProposedAction, user: AbstractBaseUser, status: str, text: str, empty_message: str
) -> ProposedAction:
    """Reject or respond: the call does not run, and `text` is what the model reads as its observation."""
    _require_reviewer(user)
    if not text.strip():
        raise ApplicationError(empty_message)
    action = (
        ProposedAction.objects.select_for_update(of=("self",)).select_related("run__ticket__assignee").get(pk=action.pk)
    )
    if action.status != ProposedAction.Status.PENDING:
        raise ConflictError(ACTION_ALREADY_DECIDED.format(status=action.get_status_display()))
    _require_not_claimed_by_another(action.run.ticket, user)
    action.status = status
    action.decided_by = user
    action.decided_at = timezone.now()
    action.decision_reason = text.strip()
    action.full_clean(exclude=ACTION_RELATIONS, validate_unique=False, validate_constraints=False)
    action.save()
    audit_event_record(
        verb=f"action.{status}",
        obj=action,
        payload={"args_hash": action.args_hash, "reason": action.decision_reason},
        user=user,
    )
    telemetry.approval_decided(action, decision=action.status)
    regression_case_capture(action=action)  # a rejection becomes a regression case
    _resume_if_decided(action)
    return action


@transaction.atomic
def proposed_action_reject(*, action: ProposedAction, user: AbstractBaseUser, reason: str) -> ProposedAction:
    """Reject with a reason; the reason is the observation the model sees next."""
    return _decide_without_running(
        action=action, user=user, status=ProposedAction.Status.REJECTED, text=reason, empty_message=REJECT_NEEDS_REASON
    )


@transaction.atomic
def proposed_action_respond(*, action: ProposedAction, user: AbstractBaseUser, feedback: str) -> ProposedAction:
    """Answer a proposal with feedback instead of a verdict (agent-inbox's "respond"): the call never runs, and
    the feedback is the observation the model continues from. Counted as reviewed, never as approved."""
    return _decide_without_running(
        action=action,
        user=user,
        status=ProposedAction.Status.RESPONDED,
        text=feedback,
        empty_message=RESPOND_NEEDS_FEEDBACK,
    )


def _withdraw_open_proposals(run: AgentRun, user: AbstractBaseUser) -> list[int]:
    """Proposals of an ended run that never ran can no longer be decided: pending ones, and approved ones whose
    execution had not started (the worker checks its lease before it starts one)."""
    open_ = ProposedAction.objects.select_for_update().filter(
        models.Q(status=ProposedAction.Status.PENDING)
        | models.Q(status=ProposedAction.Status.APPROVED, execution_started_at__isnull=True),
        run=run,
    )
    withdrawn = []
    for action in open_:
        previous = action.status
        action.status = ProposedAction.Status.WITHDRAWN
        action.save(update_fields=["status"])
        audit_event_record(
            verb="action.withdrawn", obj=action, payload={"from": previous, "why": "run taken over"}, user=user
        )
        withdrawn.append(action.pk)
    return withdrawn


def agent_run_take_over(*, run: AgentRun, user: AbstractBaseUser, reason: str = "") -> AgentRun:
    """A reviewer takes the ticket from the agent. A run still going ends (taken over), its worker loses its
    lease (its next renewal fails, so it stops before another call), and what it proposed is withdrawn. An
    escalated run stays escalated. Either way the ticket is assigned to the reviewer, and a private note in the
    helpdesk says so (posted by a worker, not here)."""
    from agent.tasks import agent_run_take_over_note_task
    from tickets.services import ticket_assign

    _require_reviewer(user)
    with transaction.atomic():
        run = AgentRun.objects.select_for_update(of=("self",)).select_related("ticket__assignee").get(pk=run.pk)
        if run.status in FINAL_STATUSES and not (run.status == AgentRun.Status.ESCALATED and not run.outcome):
            raise ConflictError(TAKE_OVER_ENDED.format(status=run.get_status_display().lower()))
        if run.status not in FINAL_STATUSES:
            AgentRun.objects.filter(pk=run.pk).update(lease_token="", lease_expires_at=None)
            run = agent_run_transition(
                run=run,
                status=AgentRun.Status.TAKEN_OVER,
                reason=TAKEN_OVER_REASON.format(
                    name=user.get_username(), reason=f": {reason.strip()}" if reason.strip() else "."
                ),
                user=user,
            )
            _withdraw_open_proposals(run, user)
        audit_event_record(verb="run.taken_over", obj=run, payload={"reason": reason.strip()}, user=user)
        ticket_assign(ticket=run.ticket, assignee=user, user=user, force=True)
        transaction.on_commit(lambda: agent_run_take_over_note_task.delay(run.pk, user.pk), robust=True)
    return run


def agent_run_take_over_note(*, run: AgentRun, user: AbstractBaseUser) -> str:
    """The helpdesk's record of a take-over. Returns what went wrong, if anything (the take-over stands)."""
    from tickets.helpdesk import HelpdeskError, helpdesk_for

    note = f"{user.get_username()} took this ticket over from Agent Console's agent (run {run.pk})."
    try:
        helpdesk_for(run.ticket).add_private_note(run.ticket, note)
    except HelpdeskError as exc:
        return exc.message
    return ""


@transaction.atomic
def agent_run_close(*, run: AgentRun, user: AbstractBaseUser, outcome: str, note: str = "") -> AgentRun:
    """Close an escalated or taken-over run with what came of it; an open escalation leaves the queue."""
    _require_reviewer(user)
    if outcome not in AgentRun.Outcome.values:
        raise ApplicationError(OUTCOME_INVALID.format(choices=", ".join(AgentRun.Outcome.values)))
    run = AgentRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (AgentRun.Status.ESCALATED, AgentRun.Status.TAKEN_OVER):
        raise ConflictError(CLOSE_NOT_ESCALATED.format(status=run.get_status_display().lower()))
    if run.outcome:
        raise ConflictError(ALREADY_CLOSED.format(outcome=run.get_outcome_display().lower()))
    run.outcome = outcome
    run.outcome_note = note.strip()
    run.closed_by = user
    run.closed_at = timezone.now()
    run.full_clean()
    run.save(update_fields=["outcome", "outcome_note", "closed_by", "closed_at", "updated_at"])
    audit_event_record(verb="run.closed", obj=run, payload={"outcome": outcome, "note": run.outcome_note}, user=user)
    return run


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


# --- Governance: phases and ratings ---------------------------------------------------------------------------

NOT_AN_ADMIN = "Only admins change a workflow's phase or stop autonomy."
PHASE_CHANGE_NEEDS_REASON = "Say why: every phase change is audited with its reason."
PHASE_UNCHANGED = "The workflow is already in the {phase} phase."
AUTONOMY_CRITERIA_UNMET = "Not yet ready to run alone: {unmet}. An admin may override with a reason."
TRIAGE_CRITERIA_UNMET = "Not yet ready to act in triage: {unmet}. An admin may override with a reason."
RATING_VALUE_INVALID = "A rating is thumbs up (1) or thumbs down (-1)."
RATING_TARGET_INVALID = "Rate exactly one thing: a proposed action, or a drafted note or reply."


def _require_admin(user: AbstractBaseUser) -> None:
    from console.roles import is_admin

    if not is_admin(user):
        raise PermissionDeniedError(NOT_AN_ADMIN)


@transaction.atomic
def workflow_phase_change(
    *, workflow: Workflow, phase: str, user: AbstractBaseUser, reason: str, override: bool = False
) -> Workflow:
    """Promote or demote a workflow. A promotion (to triage or to autonomous) needs the evidence of the version in
    force to meet that phase's criteria and the version to pass its regression suite, unless an admin overrides —
    which is recorded with the unmet criteria."""
    from agent.versions import is_promotion, promotion_unmet, workflow_version_ensure

    _require_admin(user)
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
    _require_admin(user)
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
    AgentRun.objects.filter(phase=Workflow.Phase.AUTONOMOUS).exclude(status__in=FINAL_STATUSES).update(
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
    _require_reviewer(user)
    if value not in (Rating.Value.UP, Rating.Value.DOWN):
        raise ApplicationError(RATING_VALUE_INVALID)
    if (action is None) == (step is None):
        raise ApplicationError(RATING_TARGET_INVALID)
    rating, _ = Rating.objects.update_or_create(
        user=user, action=action, step=step, defaults={"value": value, "comment": comment.strip()}
    )
    audit_event_record(
        verb="rating.set",
        obj=rating,
        payload={"value": value, "action": action and action.pk, "step": step and step.pk},
        user=user,
    )
    regression_case_from_rating(rating=rating)  # a thumbs-down becomes a regression case
    return rating


POLICY_FIELDS = ("preapproved_tools", "tool_limits", "enabled", "playbook", "runbook")
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
