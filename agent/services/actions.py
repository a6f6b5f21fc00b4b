"""Proposed actions: created by the loop, decided by reviewers (approve, reject, respond), settled by the loop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from agent import telemetry
from agent.enqueue import action_read_current_send, approval_notify_send
from agent.lifecycle import ACTION_TRANSITIONS, action_initial_check, action_transition_check
from agent.models import AgentRun, ProposedAction, Step, Workflow
from agent.permissions import reviewer_required
from agent.policy import Risk
from agent.services.leases import Advance, LeaseLost, lease_check_locked, lease_hold, lease_renewal, lease_renewed
from agent.services.rollups import rollup_action_decided, rollup_action_decided_also
from agent.services.runs import (
    agent_run_dispatch,
    agent_run_dispatch_if_waiting_sql,
    agent_run_dispatched_if_waiting,
    agent_run_transition_if,
    agent_run_transition_in,
    require_not_claimed_by_another,
)
from agent.slack import slack_destination
from agent.suites import regression_case_capture
from agent.tools.base import Observation, Tool
from agentconsole import rawsql
from agentconsole.errors import ApplicationError, ConflictError
from audit.models import AuditEvent
from audit.services import Also, audit_event_record, audit_insert_sql, audited_change, canonical_hash
from tickets.models import TenantLink, Ticket

# Relations a decision sets from loaded rows: full_clean() skips them, each would be a query for a row we hold.
ACTION_RELATIONS = ["run", "step", "retry_of", "decided_by"]
APPROVE_DRY_RUN = "A dry run is never executable; it can only be rated."
ACTION_ALREADY_DECIDED = "This action was already decided ({status})."
EDITED_ARGS_INVALID = "The edited arguments do not match the tool's schema."
EDITED_ARGS_OTHER_TENANT = "The edited arguments name another tenant than the ticket's."
REJECT_NEEDS_REASON = "Say why you reject it: the reason goes back to the agent."
RESPOND_NEEDS_FEEDBACK = "Write the feedback the agent should continue from."


@contextmanager
def tenant_budget_lock(*, tenant_id: str) -> Iterator[None]:
    """A transaction holding the tenant's budget lock: a pre-approval decision on a write and the action it creates
    commit together, and two runs of one tenant decide one after the other."""
    with transaction.atomic():
        if tenant_id and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"agent-console:budget:{tenant_id}"])
        yield


# A proposal of the run still pending, locked (FOR UPDATE in the condition of the run's move to waiting): a reviewer's
# decision being made on it holds its lock, so the move waits for the decision to commit and then sees it decided; a
# decision that comes after locks the proposal first (its conditional UPDATE, or _action_locked), so it waits for the
# move and then finds the run waiting (its dispatch UPDATE reads the run as committed), and resumes it. Either way one
# of them sees the other.
_PENDING_LOCKED = (
    'EXISTS (SELECT 1 FROM "agent_proposedaction" p WHERE p.run_id = "agent_agentrun".id AND p.status = %s FOR UPDATE)'
)


def agent_run_await_decisions(*, run: AgentRun, advance: Advance | None = None) -> bool:
    """Mark the run as waiting for reviewers, unless every proposal was decided meanwhile (a reviewer can approve
    while the turn is still being dispatched). True: it waits, and the decision will resume it; False: go on now.

    Either the decision sees the run waiting and enqueues it, or this sees the decision. On PostgreSQL a running
    run's move to waiting is one statement, with its audit entry, conditional on a proposal still pending, which it
    locks (_PENDING_LOCKED says how that orders it with a decision). Elsewhere, or when the run moved on meanwhile,
    the run's row is locked first, as the approve and reject services lock it before looking at its status. Either
    way, by an `advance`, only while it holds the run's lease: LeaseLost, nothing changed, otherwise."""
    if run.status == AgentRun.Status.RUNNING and rawsql.postgresql():
        reason = "A proposed action awaits a reviewer."
        if agent_run_transition_if(
            run=run,
            status=AgentRun.Status.AWAITING_APPROVAL,
            reason=reason,
            condition=_PENDING_LOCKED,
            params=[ProposedAction.Status.PENDING],
            advance=advance,
        ):
            return True
    return _await_decisions_locked(run=run, advance=advance)


@transaction.atomic
def _await_decisions_locked(*, run: AgentRun, advance: Advance | None) -> bool:
    locked = AgentRun.objects.select_for_update().get(pk=run.pk)
    # The moves below are made on `locked`, checked here: a run another worker took is not this one's to move. (The
    # advance's lease is released at its end, as before, not by these moves.)
    lease_check_locked(locked, advance)
    if not locked.actions.filter(status=ProposedAction.Status.PENDING).exists():
        if locked.status == AgentRun.Status.AWAITING_APPROVAL:
            agent_run_transition_in(run=locked, status=AgentRun.Status.RUNNING, reason="Every proposal is decided.")
        return False
    if locked.status != AgentRun.Status.AWAITING_APPROVAL:
        agent_run_transition_in(
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
    advance: Advance | None = None,
) -> ProposedAction:
    """Record a call the gate allowed, proposed or made a dry run; pre-approved calls say why. A repeat of an
    earlier call of the run (same tool and arguments) points at the first one and is sent with its key. By an
    `advance`, only while it holds the run's lease (LeaseLost otherwise, PostgreSQL)."""
    action_initial_check(status=status)
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
    payload = {
        "tool": action.tool,
        "args_hash": action.args_hash,
        "reason": reason,
        "retry_of": retry_of.pk if retry_of else None,
    }
    # The row and its audit entry: one statement (audited_change). Its fields come from the tool's declaration and
    # the gate's checked arguments; the database enforces lengths, keys and uniqueness: no full_clean(). Proposed by
    # an advance (PostgreSQL), it is inserted only while that advance's worker holds the run's lease: a worker whose
    # lease another took since its last renewal proposes nothing (LeaseLost), in the same statement.
    if advance is not None and rawsql.postgresql():
        names, values, params = rawsql.insert_parts([action])
        sql = (
            f'INSERT INTO "agent_proposedaction" ({names}) SELECT v.* FROM (VALUES {values}) v '  # noqa: S608 - names from the model's meta
            'WHERE EXISTS (SELECT 1 FROM "agent_agentrun" WHERE id = %s AND lease_token = %s) RETURNING id'
        )
        params = [*params, run.pk, advance.lease]
    else:
        sql, params = rawsql.insert_sql(action)
    rows = audited_change(
        sql, params, verb=f"action.{status}", model=ProposedAction, payload=payload,
        actor_kind=AuditEvent.ActorKind.AGENT,
    )  # fmt: skip
    if not rows:
        raise LeaseLost
    rawsql.inserted(action, rows[0][0])
    if status == ProposedAction.Status.PENDING:
        # Both reach other systems (the Admin API, Slack, mail): never inside the loop's turn or a transaction. Each
        # is sent only when its task would do something: a tool that cannot read its state has no diff to show,
        # and with neither Slack nor e-mail configured there is nobody to tell (the console lists the proposal).
        if tool.can_read_current:
            transaction.on_commit(lambda: action_read_current_send(action.pk), robust=True)
        if approval_channels_configured(workflow=run.workflow):
            transaction.on_commit(lambda: approval_notify_send(action.pk, "pending"), robust=True)
    return action


def approval_channels_configured(*, workflow: Workflow | None) -> bool:
    """Whether a proposal of this workflow has anyone to notify (agent.notifications.approval_notify): Slack for its
    channel, or e-mail."""
    return bool(slack_destination(channel=workflow.slack_channel if workflow else "") or settings.NOTIFY_EMAIL_FROM)


def proposed_action_read_current(*, action_id: int) -> ProposedAction | None:
    """Read, now, the state a pending call would change (its tool's read_current) and keep it on the proposal for
    the reviewer's diff. Outside any transaction: it calls the company's systems. A read failure is kept too."""
    from agent.catalogue import get_tool
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


def proposed_action_start_execution(*, action: ProposedAction, lease_of: AgentRun | None = None) -> ProposedAction:
    """Record that the call is being sent (its start time survives a crash). `lease_of`: the run whose lease is
    renewed first, always (a take-over, however recent, stops the call before it starts); on PostgreSQL in the
    same statement, which records nothing when the lease is gone (LeaseLost)."""
    if lease_of is not None and (action.execution_started_at is not None or not rawsql.postgresql()):
        lease_hold(lease_of, always=True)
        lease_of = None
    if action.execution_started_at is None:
        now = timezone.now()
        if lease_of is not None:
            renewal = lease_renewal(lease_of, always=True)
            assert renewal is not None
            rows = rawsql.execute(
                f'WITH guard AS ({renewal[0]}) UPDATE "agent_proposedaction" SET execution_started_at = %s '  # noqa: S608 - the lease's own statement
                "FROM guard WHERE agent_proposedaction.id = %s RETURNING agent_proposedaction.id",
                [*renewal[1], now, action.pk],
            )
            lease_renewed(lease_of, bool(rows))
        else:
            ProposedAction.objects.filter(pk=action.pk).update(execution_started_at=now)
        action.execution_started_at = now
    return action


def proposed_action_settle(
    *,
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None = None,
    reconciliation: Observation | None = None,
) -> ProposedAction:
    """Store how a call ended: executed (a write with its verifier's read-back), failed, or of unknown outcome
    (with what re-reading state said). A write that executed with no verification on record stays pending.

    The status the caller holds is the condition of one UPDATE of the settled fields, with its audit entry: on
    PostgreSQL one statement, which needs no transaction of its own (in autocommit it is one). When the row moved on
    meanwhile, the move is decided again on the locked row, in a transaction."""
    alone = not connection.in_atomic_block
    if alone and _settled_in_one(action, status, result, verification, reconciliation):
        return action
    with transaction.atomic():
        return _settle_locked(action, status, result, verification, reconciliation, tried=alone)


class Settlement(NamedTuple):
    """A call's settlement held for the run's next statement (proposed_action_settle_later)."""

    action: ProposedAction
    previous: str
    status: str
    result: Observation
    verification: Observation | None
    reconciliation: Observation | None


def proposed_action_settle_later(
    *,
    advance: Advance | None,
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None = None,
) -> ProposedAction:
    """proposed_action_settle, written with the call's observation instead of before it (by an `advance`, on
    PostgreSQL, outside a transaction, a move the lifecycle allows): the action is settled as loaded here and held
    by the advance, and the loop's next statement, observation_record, writes the settlement and its audit entry,
    conditional on the lease. A worker that dies before that leaves the call started with no outcome, which the next
    advance reconciles, as any call interrupted after it was sent. Elsewhere it is written now."""
    if (
        advance is None
        or advance.settlement is not None
        or connection.in_atomic_block
        or not rawsql.postgresql()
        or status not in ACTION_TRANSITIONS.get(action.status, frozenset())
    ):
        return proposed_action_settle(action=action, status=status, result=result, verification=verification)
    previous = action.status
    _settlement_apply(action, status, result, verification, None)
    advance.settlement = Settlement(action, previous, status, result, verification, None)
    return action


def settlement_take(advance: Advance) -> Settlement | None:
    """The settlement proposed_action_settle_later left with the advance for its next statement, if any (taken:
    written once)."""
    settlement, advance.settlement = advance.settlement, None
    return settlement


def settlement_sql(settlement: Settlement, *, guard: str) -> tuple[str, list[Any], str, list[Any]]:
    """The settlement's UPDATE, conditional on a row of the WITH `guard` and on the status it was settled from
    (RETURNING the action's id), and its audit INSERT reading the WITH named "settled": each with its parameters."""
    action = settlement.action
    sets = ", ".join(f"{rawsql.column(ProposedAction, name)} = %s" for name in SETTLED_FIELDS)
    params = [rawsql.prep(ProposedAction, name, getattr(action, name)) for name in SETTLED_FIELDS]
    update = (
        f'UPDATE "agent_proposedaction" SET {sets} FROM {guard} WHERE agent_proposedaction.id = %s '  # noqa: S608 - names from the model's meta
        "AND agent_proposedaction.status = %s RETURNING agent_proposedaction.id"
    )
    audit, audit_params = audit_insert_sql(
        "settled",
        verb=f"action.{action.status}",
        model=ProposedAction,
        payload=_settled_payload(action, settlement.result, settlement.previous),
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    return update, [*params, action.pk, settlement.previous], audit, audit_params


def settlement_write(settlement: Settlement) -> ProposedAction:
    """A held settlement written on its own, as proposed_action_settle writes one (its statement did not write it)."""
    action = settlement.action
    action.status = settlement.previous
    return proposed_action_settle(
        action=action,
        status=settlement.status,
        result=settlement.result,
        verification=settlement.verification,
        reconciliation=settlement.reconciliation,
    )


def _settled_in_one(
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None,
    reconciliation: Observation | None,
) -> bool:
    """proposed_action_settle's common case on PostgreSQL: the settlement and its audit entry, one statement. False,
    nothing written, when the row moved on (the action is then to be read again) or this is not the common case."""
    previous = action.status
    if status not in ACTION_TRANSITIONS.get(previous, frozenset()) or not rawsql.postgresql():
        return False
    _settlement_apply(action, status, result, verification, reconciliation)
    sets = ", ".join(f"{rawsql.column(ProposedAction, name)} = %s" for name in SETTLED_FIELDS)
    params = [rawsql.prep(ProposedAction, name, getattr(action, name)) for name in SETTLED_FIELDS]
    return bool(
        audited_change(
            f'UPDATE "agent_proposedaction" SET {sets} WHERE id = %s AND status = %s RETURNING id',  # noqa: S608 - names from the model's meta
            [*params, action.pk, previous],
            verb=f"action.{action.status}",
            model=ProposedAction,
            payload=_settled_payload(action, result, previous),
            actor_kind=AuditEvent.ActorKind.AGENT,
        )
    )


def _settle_locked(
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None,
    reconciliation: Observation | None,
    *,
    tried: bool,
) -> ProposedAction:
    """proposed_action_settle in a transaction: the common case (unless `tried` already), else the row locked and
    the move decided on it."""
    if not tried and _settled_in_one(action, status, result, verification, reconciliation):
        return action
    previous = action.status
    moved = 0
    if status in ACTION_TRANSITIONS.get(previous, frozenset()) and not rawsql.postgresql():
        _settlement_apply(action, status, result, verification, reconciliation)
        moved = ProposedAction.objects.filter(pk=action.pk, status=previous).update(
            **{field: getattr(action, field) for field in SETTLED_FIELDS}
        )
    if not moved:
        action = ProposedAction.objects.select_for_update().get(pk=action.pk)
        previous = action.status
        action_transition_check(current=previous, target=status)
        _settlement_apply(action, status, result, verification, reconciliation)
        action.save(update_fields=SETTLED_FIELDS)
    audit_event_record(
        verb=f"action.{action.status}",
        obj=action,
        payload=_settled_payload(action, result, previous),
        actor_kind=AuditEvent.ActorKind.AGENT,
    )
    return action


def _settled_payload(action: ProposedAction, result: Observation, previous: str) -> dict[str, Any]:
    return {
        "tool": action.tool,
        "args_hash": canonical_hash(action.args),
        "ok": result.ok,
        "error_type": result.error_type,
        "uncertain": result.uncertain,
        "verification": action.verification,
        "from": previous,
    }


# What settling a call writes (proposed_action_settle).
SETTLED_FIELDS = ["status", "execution_result", "executed_at", "verification", "verification_result"]


def _settlement_apply(
    action: ProposedAction,
    status: str,
    result: Observation,
    verification: Observation | None,
    reconciliation: Observation | None,
) -> None:
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
    elif status == ProposedAction.Status.EXECUTED and action.risk == Risk.WRITE:
        action.verification = ProposedAction.Verification.PENDING


def _enqueue_advance(run: AgentRun) -> None:
    agent_run_dispatch(run_id=run.pk)


def _resume_if_decided(action: ProposedAction) -> None:
    # SQLite (on PostgreSQL the decision's statement does this, see _decision_save). The run's row is locked, as
    # agent_run_await_decisions locks it: a decision made while the turn is still being dispatched is either seen
    # there, or finds the run waiting here and resumes it.
    run = AgentRun.objects.select_for_update().get(pk=action.run_id)
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        _enqueue_advance(run)


def _action_pk(action: ProposedAction | int) -> int:
    return action if isinstance(action, int) else action.pk


def _action_locked(pk: int, *, lock: bool = True) -> ProposedAction:
    """The proposal a reviewer decides, its row locked, with its run, ticket, tenant link and assignee loaded (one
    hand-written statement on PostgreSQL). `lock=False` (PostgreSQL): read as committed, for a decision made
    conditional on the status read (proposed_action_approve)."""
    if not rawsql.postgresql():
        return (
            ProposedAction.objects.select_for_update(of=("self",))
            .select_related("run__ticket__tenant_link", "run__ticket__assignee")
            .get(pk=pk)
        )
    user_model = get_user_model()
    models_ = (ProposedAction, AgentRun, Ticket, TenantLink, user_model)
    rows = rawsql.execute(
        f"SELECT {rawsql.columns(ProposedAction, 'a')}, {rawsql.columns(AgentRun, 'r')}, "  # noqa: S608 - names from the models' meta
        f"{rawsql.columns(Ticket, 't')}, {rawsql.columns(TenantLink, 'l')}, {rawsql.columns(user_model, 'u')} "
        f"FROM {rawsql.table(ProposedAction)} a JOIN {rawsql.table(AgentRun)} r ON r.id = a.run_id "
        f"JOIN {rawsql.table(Ticket)} t ON t.id = r.ticket_id LEFT JOIN {rawsql.table(TenantLink)} l "
        f"ON l.id = t.tenant_link_id LEFT JOIN {rawsql.table(user_model)} u ON u.id = t.assignee_id "
        f"WHERE a.id = %s{' FOR UPDATE OF a' if lock else ''}",
        [pk],
    )
    if not rows:
        raise ProposedAction.DoesNotExist("ProposedAction matching query does not exist.")
    loaded, at = [], 0
    for model in models_:
        loaded.append(rawsql.load(model, rows[0], at))
        at += rawsql.width(model)
    action, run, ticket, link, assignee = loaded
    Ticket._meta.get_field("tenant_link").set_cached_value(ticket, link if ticket.tenant_link_id else None)
    Ticket._meta.get_field("assignee").set_cached_value(ticket, assignee if ticket.assignee_id else None)
    AgentRun._meta.get_field("ticket").set_cached_value(run, ticket)
    ProposedAction._meta.get_field("run").set_cached_value(action, run)
    return action


def _decision_save(
    action: ProposedAction,
    fields: list[str],
    *,
    verb: str,
    payload: dict[str, Any],
    user: AbstractBaseUser,
    pending_only: bool = False,
) -> bool:
    """A reviewer's decision on the locked proposal, written with its audit entry and the wait's weekly count, and
    the run resumed if it waits for reviewers: one statement on PostgreSQL.

    The run's dispatch there is an UPDATE conditional on the run waiting, in the same statement: it locks the run's
    row and reads its status as committed (agent_run_dispatch_if_waiting says why that matters). `pending_only`
    (PostgreSQL, a proposal read without its lock): the decision, and with it everything else, only if the proposal
    is still pending; False when it was not (nothing written)."""
    if not rawsql.postgresql():
        action.save(update_fields=fields)
        audit_event_record(verb=verb, obj=action, payload=payload, user=user)
        rollup_action_decided(action=action)
        _resume_if_decided(action)
        return True
    names = [ProposedAction._meta.get_field(name).attname for name in fields]
    sets = ", ".join(f"{rawsql.column(ProposedAction, name)} = %s" for name in fields)
    params = [
        rawsql.prep(ProposedAction, name, getattr(action, attname)) for name, attname in zip(fields, names, strict=True)
    ]
    dispatch, dispatch_params, token = agent_run_dispatch_if_waiting_sql(
        run_id=action.run_id, changed="change" if pending_only else ""
    )
    pending = " AND status = %s" if pending_only else ""
    rows = audited_change(
        f'UPDATE "agent_proposedaction" SET {sets} WHERE id = %s{pending} RETURNING id',  # noqa: S608 - names from the model's meta
        [*params, action.pk, *([ProposedAction.Status.PENDING] if pending_only else [])],
        verb=verb,
        model=ProposedAction,
        payload=payload,
        user=user,
        also=[rollup_action_decided_also(action=action), Also(dispatch, dispatch_params, returns=True)],
    )
    if not rows:
        return False
    agent_run_dispatched_if_waiting(run_id=action.run_id, token=token, status=rows[0][-1])
    return True


def proposed_action_approve(
    *, action: ProposedAction | int, user: AbstractBaseUser, args: dict[str, Any] | None = None
) -> ProposedAction:
    """Approve exactly these args (optionally edited, validated, the model's originals kept). The run resumes
    in a worker; what executes must hash to what was approved. `action` may be the proposal's id alone (what a
    reviewer's POST carries): it is loaded here either way.

    On PostgreSQL outside a transaction, a proposal approved as the model proposed it is read without its lock and
    decided by one statement conditional on its still being pending: no transaction (BEGIN and COMMIT are round
    trips of their own). When it was decided meanwhile, that statement changes nothing, and the approval is made
    again on the locked row, which says why it cannot be; an edit is always made on the locked row."""
    reviewer_required(user)
    pk = _action_pk(action)
    if rawsql.postgresql() and not connection.in_atomic_block:
        approved = _approve(_action_locked(pk, lock=False), user, args, pending_only=True)
        if approved is not None:
            return approved
    with transaction.atomic():
        approved = _approve(_action_locked(pk), user, args)
    assert approved is not None
    return approved


def _approve(
    action: ProposedAction, user: AbstractBaseUser, args: dict[str, Any] | None, *, pending_only: bool = False
) -> ProposedAction | None:
    """proposed_action_approve on the loaded proposal. `pending_only` (read without its lock): None, nothing
    written, unless it is pending, approved as proposed, and still pending when the decision is written."""
    from agent.catalogue import get_tool

    if pending_only and (action.status != ProposedAction.Status.PENDING or (args is not None and args != action.args)):
        return None
    if action.status == ProposedAction.Status.DRY_RUN:
        raise ConflictError(APPROVE_DRY_RUN)
    if action.status != ProposedAction.Status.PENDING:
        raise ConflictError(ACTION_ALREADY_DECIDED.format(status=action.get_status_display()))
    require_not_claimed_by_another(action.run.ticket, user)
    if args is not None and args != action.args:
        tool = get_tool(action.tool)
        parsed = tool.parse_args(args) if tool else None
        if parsed is None or isinstance(parsed, Observation):
            raise ApplicationError(
                EDITED_ARGS_INVALID, extra={"errors": parsed.meta.get("errors", []) if parsed else []}
            )
        if tool.tenant_arg in args and args[tool.tenant_arg] != action.run.ticket.tenant_id:
            raise ApplicationError(EDITED_ARGS_OTHER_TENANT)
        action.original_args = action.args
        action.args = args
        action.args_hash = canonical_hash(args)
    action_transition_check(current=action.status, target=ProposedAction.Status.APPROVED)
    action.status = ProposedAction.Status.APPROVED
    action.approved_args_hash = action.args_hash
    action.decided_by = user
    action.decided_at = timezone.now()
    if action.original_args is not None:  # the reviewer's own arguments; otherwise every field set here is ours
        action.full_clean(exclude=ACTION_RELATIONS, validate_unique=False, validate_constraints=False)
    if not _decision_save(
        action,
        ["status", "args", "args_hash", "original_args", "approved_args_hash", "decided_by", "decided_at"],
        verb="action.approved",
        payload={"args": action.args, "args_hash": action.args_hash, "edited": action.original_args is not None},
        user=user,
        pending_only=pending_only,
    ):
        return None
    telemetry.approval_decided(action, decision=action.status)
    if action.original_args is not None:
        regression_case_capture(action=action)  # the reviewer's correction becomes a regression case
    return action


def _decide_without_running(
    *, action: ProposedAction | int, user: AbstractBaseUser, status: str, text: str, empty_message: str
) -> ProposedAction:
    """Reject or respond: the call does not run, and `text` is what the model reads as its observation."""
    reviewer_required(user)
    if not text.strip():
        raise ApplicationError(empty_message)
    action = _action_locked(_action_pk(action))
    if action.status != ProposedAction.Status.PENDING:
        raise ConflictError(ACTION_ALREADY_DECIDED.format(status=action.get_status_display()))
    require_not_claimed_by_another(action.run.ticket, user)
    action_transition_check(current=action.status, target=status)
    action.status = status
    action.decided_by = user
    action.decided_at = timezone.now()
    action.decision_reason = text.strip()
    action.full_clean(exclude=ACTION_RELATIONS, validate_unique=False, validate_constraints=False)
    _decision_save(
        action,
        ["status", "decided_by", "decided_at", "decision_reason"],
        verb=f"action.{status}",
        payload={"args_hash": action.args_hash, "reason": action.decision_reason},
        user=user,
    )
    telemetry.approval_decided(action, decision=action.status)
    regression_case_capture(action=action)  # a rejection becomes a regression case
    return action


@transaction.atomic
def proposed_action_reject(*, action: ProposedAction | int, user: AbstractBaseUser, reason: str) -> ProposedAction:
    """Reject with a reason; the reason is the observation the model sees next."""
    return _decide_without_running(
        action=action, user=user, status=ProposedAction.Status.REJECTED, text=reason, empty_message=REJECT_NEEDS_REASON
    )


@transaction.atomic
def proposed_action_respond(*, action: ProposedAction | int, user: AbstractBaseUser, feedback: str) -> ProposedAction:
    """Answer a proposal with feedback instead of a verdict (agent-inbox's "respond"): the call never runs, and
    the feedback is the observation the model continues from. Counted as reviewed, never as approved."""
    return _decide_without_running(
        action=action,
        user=user,
        status=ProposedAction.Status.RESPONDED,
        text=feedback,
        empty_message=RESPOND_NEEDS_FEEDBACK,
    )
