"""A run's lifecycle: its dispatch (the outbox), its status transitions, and how it ends (finished, escalated,
taken over, closed)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from agent import telemetry
from agent.catalogue import get_tool
from agent.enqueue import run_advance_send, take_over_note_send
from agent.lifecycle import (
    RUN_CLOSABLE,
    RUN_FINAL,
    RUN_STOPPED,
    RUN_TRANSITIONS,
    action_transition_check,
    run_transition_check,
)
from agent.models import AgentRun, ProposedAction, Step, Workflow
from agent.permissions import reviewer_required
from agent.services.leases import Advance, lease_check_locked, lease_hold, lease_release_noted, lease_release_sets
from agent.services.rollups import RUN_RETURNING, rollup_run_finished, rollup_run_finished_also
from agent.services.transcript import (
    agent_run_final_turn_dropped,
    agent_run_final_turn_parts,
    agent_run_final_turn_recorded,
    step_append,
)
from agentconsole import rawsql
from agentconsole.errors import ApplicationError, ConflictError
from audit.models import AuditEvent
from audit.services import Also, audit_event_record, audited_change
from tickets.models import Ticket

if TYPE_CHECKING:
    from agent.llm.conversation import ModelTurn

logger = logging.getLogger(__name__)


# A run's first turn is sent at this priority, every later one at the default (0, the highest with Redis): a ticket in
# progress goes ahead of new tickets, so its time to resolution nears the sum of its model calls. SQS ignores it.
NEW_RUN_PRIORITY = 9


def agent_run_publish(*, run_id: int, token: str, priority: int | None = None) -> bool:
    """Send the message that advances a run. Never raises: a broker that is down is logged, and the reconciler
    sends the run again once the dispatch is stale (its token and time are already stored)."""
    try:
        run_advance_send(run_id, token, priority=priority)
    except Exception:  # any broker or serialisation failure: the outbox row is what makes this safe to swallow
        logger.warning("run %s: could not enqueue its next advance; the reconciler will", run_id, exc_info=True)
        return False
    return True


_DISPATCH = 'UPDATE "agent_agentrun" SET dispatch_token = %s, dispatched_at = %s WHERE id = %s'


def agent_run_dispatch(*, run_id: int, new: bool = False) -> str:
    """Record that the run needs an advance (a new dispatch token supersedes any older message) and send the
    message once the surrounding transaction commits, or now outside one. A new run's message waits behind the
    next turns of runs in progress."""
    token = uuid.uuid4().hex
    rawsql.run(_DISPATCH, [token, rawsql.prep(AgentRun, "dispatched_at", timezone.now()), run_id])
    priority = NEW_RUN_PRIORITY if new else None
    transaction.on_commit(lambda: agent_run_publish(run_id=run_id, token=token, priority=priority), robust=True)
    return token


_DISPATCH_IF_WAITING = (
    'UPDATE "agent_agentrun" SET dispatch_token = CASE WHEN status = %s THEN %s ELSE dispatch_token END, '
    "dispatched_at = CASE WHEN status = %s THEN %s ELSE dispatched_at END WHERE id = %s{changed} RETURNING status"
)


def agent_run_dispatch_if_waiting(*, run_id: int) -> str:
    """agent_run_dispatch for a run waiting for reviewers, else nothing: one UPDATE whose change depends on the
    status, read as committed. The token, or "" when the run was not waiting.

    The UPDATE locks the row whatever the status (as select_for_update did): a run still running stays locked until
    the decision commits, so the worker's move to waiting (agent_run_await_decisions) waits for it and then sees the
    decision. With the status in the WHERE clause a running run was not locked, and a worker could move it to
    waiting, see the proposal still pending and commit: a run waiting for a decision already made."""
    sql, params, token = agent_run_dispatch_if_waiting_sql(run_id=run_id)
    moved = rawsql.execute(sql, params)
    return agent_run_dispatched_if_waiting(run_id=run_id, token=token, status=moved[0][0] if moved else "")


def agent_run_dispatch_if_waiting_sql(*, run_id: int, changed: str = "") -> tuple[str, list[Any], str]:
    """agent_run_dispatch_if_waiting's UPDATE, for a caller to make part of a statement of its own (PostgreSQL: a
    data-modifying WITH): the statement, which returns the run's status, its parameters and the token. Then call
    agent_run_dispatched_if_waiting with the status it returned. `changed`: the name of a WITH of that statement;
    the run is dispatched (and its row locked) only when that returned a row."""
    token = uuid.uuid4().hex
    waiting = AgentRun.Status.AWAITING_APPROVAL
    condition = f" AND EXISTS (SELECT 1 FROM {changed})" if changed else ""  # noqa: S608 - the name of a WITH of ours
    sql = _DISPATCH_IF_WAITING.format(changed=condition)
    return sql, [waiting, token, waiting, timezone.now(), run_id], token


def agent_run_dispatched_if_waiting(*, run_id: int, token: str, status: str | None) -> str:
    """After agent_run_dispatch_if_waiting_sql's UPDATE returned the run's status: the message is sent once the
    transaction commits if the run was waiting. The token, or "" when it was not."""
    if status != AgentRun.Status.AWAITING_APPROVAL:
        return ""
    transaction.on_commit(lambda: agent_run_publish(run_id=run_id, token=token, priority=None), robust=True)
    return token


def agent_run_dispatch_prepare(run: AgentRun) -> str:
    """agent_run_dispatch for a run not inserted yet: its dispatch goes into the INSERT (no UPDATE after it). Send
    the message with agent_run_publish_on_commit once the row is in."""
    run.dispatch_token = uuid.uuid4().hex
    run.dispatched_at = timezone.now()
    return run.dispatch_token


def agent_run_publish_on_commit(*, run: AgentRun, token: str, new: bool = False) -> None:
    priority = NEW_RUN_PRIORITY if new else None
    run_id = run.pk
    transaction.on_commit(lambda: agent_run_publish(run_id=run_id, token=token, priority=priority), robust=True)


def agent_run_transition(
    *,
    run: AgentRun,
    status: str,
    reason: str = "",
    user: AbstractBaseUser | None = None,
    also: dict[str, Any] | None = None,
    together: Sequence[Also] = (),
    advance: Advance | None = None,
) -> AgentRun:
    """Move a run along its lifecycle, audited; anything the lifecycle does not allow raises. `also`: fields the
    same UPDATE records (the version a starting run pins), set on the run passed in too. `together`: changes of
    other rows written with the move (audit.services.Also, PostgreSQL), in the same statement in the common case,
    else right after it in its transaction.

    On PostgreSQL the common case is one statement (the move, its audit entry, the lease's release and the dashboard's
    counts, see agent_run_transition_in), which needs no transaction of its own: in autocommit it is one, and what
    waits for its commit (transaction.on_commit) runs after it. Anything more takes a transaction.

    `advance`: the advance (leases.Advance) making the move, which it makes only while the advance holds the run's
    lease: LeaseLost, nothing changed, when another worker (or a reviewer) took it. The move that stops the run
    releases that lease."""
    if not connection.in_atomic_block and _transition_in_one(
        run, status, reason, user, also, alone=True, together=together, advance=advance
    ):
        return run
    with transaction.atomic():
        moved = agent_run_transition_in(
            run=run, status=status, reason=reason, user=user, also=also, tried=True, advance=advance
        )
        for statement in together:
            rawsql.run(statement.sql, statement.params)
        return moved


def agent_run_transition_if(
    *, run: AgentRun, status: str, reason: str, condition: str, params: list[Any], advance: Advance | None = None
) -> bool:
    """agent_run_transition's one statement (PostgreSQL, a move the lifecycle allows from the status held), made also
    conditional on `condition`, SQL on the run's row ("agent_agentrun") with its parameters. No transaction of its
    own. False, nothing changed: the condition did not hold, or the row moved on."""
    return bool(
        _transition_in_one(run, status, reason, None, None, alone=True, condition=(condition, params), advance=advance)
    )


class TransitionParts(NamedTuple):
    """A move of a run as SET clauses for an UPDATE of its row the caller writes (agent_run_transition_parts)."""

    sets: list[str]
    params: list[Any]
    previous: str
    payload: dict[str, Any]
    values: dict[str, Any]


def agent_run_transition_parts(*, run: AgentRun, status: str, reason: str) -> TransitionParts | None:
    """agent_run_transition's UPDATE as SET clauses, for a caller that makes the move part of a statement of its
    own (PostgreSQL), conditional on the run's status as held (`previous`) and with the audit entry of `payload`
    (run.status_changed, by the agent): only a move the lifecycle allows from the status held that neither stops
    nor ends the run (no lease to release, no counts, no suite waiting). None otherwise: agent_run_transition.
    Once the statement changed the row, call agent_run_transition_applied."""
    previous = run.status
    if status not in RUN_TRANSITIONS.get(previous, frozenset()) or status in RUN_STOPPED or not rawsql.postgresql():
        return None
    now = timezone.now()
    started_at = run.started_at or (now if status == AgentRun.Status.RUNNING else None)
    values = {"status": status, "status_reason": reason, "started_at": started_at, "updated_at": now}
    sets = [f"{rawsql.column(AgentRun, name)} = %s" for name in values]
    params = [rawsql.prep(AgentRun, name, value) for name, value in values.items()]
    payload = {"from": previous, "to": status, "reason": reason}
    return TransitionParts(sets, params, previous, payload, values)


def agent_run_transition_applied(*, run: AgentRun, parts: TransitionParts) -> None:
    for name, value in parts.values.items():
        setattr(run, name, value)


def agent_run_transition_in(
    *,
    run: AgentRun,
    status: str,
    reason: str = "",
    user: AbstractBaseUser | None = None,
    also: dict[str, Any] | None = None,
    tried: bool = False,
    advance: Advance | None = None,
) -> AgentRun:
    """agent_run_transition for a caller already inside a transaction of its own (no savepoint): if the move
    raises, the caller's transaction rolls back with it.

    The status the caller holds is checked against the lifecycle and then made the condition of one UPDATE: the
    run (with its ticket and workflow) stays loaded, and nothing is read again. When the row has moved on meanwhile
    (another worker, a reviewer), the move is decided again on the locked row, as it always was. Either way the run
    passed in is the one returned, its status fields as stored. `tried`: _transition_in_one found the row moved.
    Made by an `advance`, only while it holds the run's lease, else LeaseLost (agent_run_transition)."""
    if not tried and _transition_in_one(run, status, reason, user, also, alone=False, advance=advance):
        return run
    now = timezone.now()
    started_at = run.started_at or (now if status == AgentRun.Status.RUNNING else None)
    finished_at = now if status in RUN_FINAL else run.finished_at
    if status in RUN_TRANSITIONS.get(run.status, frozenset()) and not rawsql.postgresql():
        # Only fields change here and the database enforces the run's relations and constraints: no full_clean(),
        # which costs a query per loaded relation on every status change.
        held = {"lease_token": advance.lease} if advance is not None else {}
        moved = AgentRun.objects.filter(pk=run.pk, status=run.status, **held).update(
            status=status, status_reason=reason, started_at=started_at, finished_at=finished_at, updated_at=now,
            **(also or {}),
        )  # fmt: skip
    else:
        moved = 0
    if moved:
        previous = run.status
    else:
        locked = AgentRun.objects.select_for_update().get(pk=run.pk)
        lease_check_locked(locked, advance)  # before the lifecycle: a run taken over is no longer this worker's to move
        run_transition_check(current=locked.status, target=status)
        previous = locked.status
        started_at = locked.started_at or (now if status == AgentRun.Status.RUNNING else None)
        finished_at = now if status in RUN_FINAL else locked.finished_at
        AgentRun.objects.filter(pk=run.pk).update(
            status=status, status_reason=reason, started_at=started_at, finished_at=finished_at, updated_at=now,
            **(also or {}),
        )  # fmt: skip
    for field, value in (also or {}).items():
        setattr(run, field, value)
    run.status, run.status_reason, run.started_at, run.finished_at, run.updated_at = (
        status,
        reason,
        started_at,
        finished_at,
        now,
    )
    if status in RUN_FINAL:
        telemetry.run_finished(status=status, phase=run.phase)
        rollup_run_finished(run=run)  # the dashboard's weekly totals, in this transaction
    if status in RUN_STOPPED and previous not in RUN_STOPPED:
        from agent.suites import suite_rerun_on_stop

        suite_rerun_on_stop(run=run)
    audit_event_record(
        verb="run.status_changed",
        obj=run,
        payload={"from": previous, "to": status, "reason": reason},
        user=user,
        actor_kind=None if user is not None else AuditEvent.ActorKind.AGENT,
    )
    return run


def _transition_in_one(
    run: AgentRun,
    status: str,
    reason: str,
    user: AbstractBaseUser | None,
    also: dict[str, Any] | None,
    *,
    alone: bool,
    condition: tuple[str, list[Any]] = ("", []),
    together: Sequence[Also] = (),
    more_sets: tuple[list[str], list[Any]] = ([], []),
    advance: Advance | None = None,
) -> list[tuple[Any, ...]]:
    """agent_run_transition_in's common case on PostgreSQL, a move the lifecycle allows from the status held: the
    conditional UPDATE, its audit entry, the lease's release and (for a run that stops) the suite run waiting for it
    and the dashboard's counts of a run that ends, one statement. False, nothing changed, when the row moved on or
    this is not the common case. `alone`: outside any transaction, so it must be one statement (the counts of a run
    whose ticket is not loaded are statements of their own: False). `more_sets`: SET clauses of the same UPDATE (with
    their parameters). Made by an `advance`, conditional on its lease. The rows it returned, as the change returns
    them: empty (false) when nothing changed."""
    from agent.suites import suite_rerun_later, suite_waiting_sql

    previous = run.status
    if status not in RUN_TRANSITIONS.get(previous, frozenset()) or not rawsql.postgresql():
        return []
    now = timezone.now()
    rollups = rollup_run_finished_also(run=run, status=status, finished_at=now) if status in RUN_FINAL else None
    if status in RUN_FINAL and rollups is None and alone:
        return []
    started_at = run.started_at or (now if status == AgentRun.Status.RUNNING else None)
    finished_at = now if status in RUN_FINAL else run.finished_at
    values = {"status": status, "status_reason": reason, "started_at": started_at, "finished_at": finished_at,
              "updated_at": now, **(also or {})}  # fmt: skip
    sets, params = [], []
    for name, value in values.items():
        sets.append(f"{rawsql.column(AgentRun, name)} = %s")
        params.append(rawsql.prep(AgentRun, name, value.pk if isinstance(value, models.Model) else value))
    sets += more_sets[0]
    params += more_sets[1]
    release = lease_release_sets(advance) if status in RUN_STOPPED else None
    if release is not None:
        sets += release[0]
        params += release[1]
    table = rawsql.table(AgentRun)
    stopping = status in RUN_STOPPED and previous not in RUN_STOPPED
    returning = f"id, {suite_waiting_sql(table)}" if stopping and run.workflow_id is not None else "id, NULL"
    if rollups is not None:
        returning += f", {RUN_RETURNING}"
    where, where_params = "id = %s AND status = %s", [run.pk, previous]
    if advance is not None:
        where += " AND lease_token = %s"
        where_params.append(advance.lease)
    if condition[0]:
        where += f" AND {condition[0]}"
        where_params += condition[1]
    rows = audited_change(
        f"UPDATE {table} SET {', '.join(sets)} WHERE {where} RETURNING {returning}",  # noqa: S608 - names from the model's meta
        [*params, *where_params],
        verb="run.status_changed",
        model=AgentRun,
        payload={"from": previous, "to": status, "reason": reason},
        user=user,
        actor_kind=None if user is not None else AuditEvent.ActorKind.AGENT,
        also=[*(rollups or ()), *together],
    )
    if not rows:
        return []
    if release is not None and advance is not None:
        lease_release_noted(advance)
    for field, value in (also or {}).items():
        setattr(run, field, value)
    run.status, run.status_reason, run.started_at, run.finished_at, run.updated_at = (
        status, reason, started_at, finished_at, now,
    )  # fmt: skip
    if status in RUN_FINAL:
        telemetry.run_finished(status=status, phase=run.phase)
        if rollups is None:
            rollup_run_finished(run=run)  # the dashboard's weekly totals, in this transaction
    suite_rerun_later(rows[0][1])
    return rows


CLAIMED_BY_ANOTHER = "{name} has claimed this ticket. Take the claim first if you mean to decide it."
TAKE_OVER_ENDED = "This run has already ended ({status}); there is nothing to take over."
TAKEN_OVER_REASON = "Taken over by {name}{reason}"
OUTCOME_INVALID = "Choose an outcome: {choices}."
CLOSE_NOT_ESCALATED = "Only an escalated or taken-over run is closed with an outcome; this one is {status}."
ALREADY_CLOSED = "This escalation was already closed ({outcome})."


def helpdesk_escalation_post(run: AgentRun, note: str) -> str:
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


def agent_run_escalate(*, run: AgentRun, reason: str, advance: Advance | None = None) -> AgentRun:
    """Hand the ticket to humans: a private note saying why, routed to the humans pod, the run escalated. By an
    `advance`, only while it holds the run's lease (LeaseLost otherwise): renewed before the note as before any slow
    call, and the condition of the move after it."""
    if advance is not None:
        lease_hold(run)  # renewed before the note (a slow call) when one ran since: LeaseLost if another worker took it
    problem = helpdesk_escalation_post(run, f"Agent Console escalated this ticket to a human.\nWhy: {reason}")
    with transaction.atomic():
        step_append(run=run, kind=Step.Kind.FINAL, content=f"Escalated to humans: {reason}{problem}")
        lease = run.lease_token
        run.refresh_from_db()
        run.lease_token = lease  # this worker's lease (its caller releases it by this token), not the row's holder now
        return agent_run_transition(run=run, status=AgentRun.Status.ESCALATED, reason=reason, advance=advance)


def _dry_run_note(run: AgentRun, answer: str) -> str:
    lines = ["Agent Console (shadow phase) — nothing was executed. It would have made these calls:"]
    for number, action in enumerate(run.actions.filter(status=ProposedAction.Status.DRY_RUN), start=1):
        tool = get_tool(action.tool)
        query = action.args.get(tool.query_arg) if tool is not None and tool.query_arg else None
        args = query if isinstance(query, str) else json.dumps(action.args, sort_keys=True)
        lines.append(f"{number}. {action.tool} ({action.risk}): {args}")
        if action.rationale:
            lines.append(f"   why: {action.rationale}")
    lines.append(f"Summary: {answer}")
    return "\n".join(lines)


def agent_run_finish_with_turn(*, run: AgentRun, answer: str, turn: ModelTurn, engine: str, advance: Advance) -> bool:
    """agent_run_finish with the final turn that gave `answer` recorded by the same statement (PostgreSQL, a run
    outside shadow, which posts nothing): the turn counted, its step, the move to completed with its audit entry,
    the lease's release and the dashboard's counts, conditional on this worker's lease. False, nothing written: the
    lease is gone or the run moved on, or this is not that case (record the turn, then agent_run_finish)."""
    if run.phase == Workflow.Phase.SHADOW or not rawsql.postgresql() or connection.in_atomic_block:
        return False
    sets, params, step = agent_run_final_turn_parts(run=run, turn=turn, engine=engine)
    names, values, step_params = rawsql.insert_parts([step])
    insert = Also(
        f"INSERT INTO {rawsql.table(Step)} ({names}) SELECT v.* FROM change CROSS JOIN (VALUES {values}) v "  # noqa: S608 - names from the model's meta
        "RETURNING id",
        step_params,
        returns=True,
    )
    rows = _transition_in_one(
        run, AgentRun.Status.COMPLETED, answer[:500], None, None, alone=True, together=[insert],
        more_sets=(sets, params), advance=advance,
    )  # fmt: skip
    if not rows:
        agent_run_final_turn_dropped(run=run)
        return False
    agent_run_final_turn_recorded(run=run, turn=turn, engine=engine, step=step, step_id=rows[0][-1])
    return True


def agent_run_finish(*, run: AgentRun, answer: str, advance: Advance | None = None) -> AgentRun:
    """The model is done. In shadow, its only output is a private note listing what it would have done. By an
    `advance`, only while it holds the run's lease (agent_run_transition)."""
    if run.phase == Workflow.Phase.SHADOW:
        from tickets.helpdesk import HelpdeskError, helpdesk_for
        from tickets.snapshot import comment_marker

        try:
            helpdesk_for(run.ticket).add_private_note(
                run.ticket, _dry_run_note(run, answer), marker=comment_marker(f"run-{run.pk}-shadow-note")
            )
        except HelpdeskError as exc:
            return agent_run_escalate(
                run=run, reason=f"the shadow note could not be posted: {exc.message}", advance=advance
            )
    # No read of the run first: the transition is conditional on the status held, and decided again on the locked
    # row if that moved meanwhile.
    return agent_run_transition(run=run, status=AgentRun.Status.COMPLETED, reason=answer[:500], advance=advance)


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
        action_transition_check(current=previous, target=ProposedAction.Status.WITHDRAWN)
        action.status = ProposedAction.Status.WITHDRAWN
        action.save(update_fields=["status"])
        audit_event_record(
            verb="action.withdrawn", obj=action, payload={"from": previous, "why": "run taken over"}, user=user
        )
        withdrawn.append(action.pk)
    return withdrawn


def require_not_claimed_by_another(ticket: Ticket, user: AbstractBaseUser) -> None:
    """A ticket a reviewer claimed is theirs to decide (a proposal, a take-over, closing its escalation): anyone
    else takes the claim first, on purpose."""
    if ticket.assignee_id is not None and ticket.assignee_id != user.pk:
        raise ConflictError(CLAIMED_BY_ANOTHER.format(name=ticket.assignee.get_username()))


def agent_run_take_over(*, run: AgentRun, user: AbstractBaseUser, reason: str = "") -> AgentRun:
    """A reviewer takes the ticket from the agent. A run still going ends (taken over), its worker loses its
    lease (its next renewal fails, so it stops before another call), and what it proposed is withdrawn. An
    escalated run stays escalated. Either way the ticket is assigned to the reviewer, and a private note in the
    helpdesk says so (posted by a worker, not here)."""
    from tickets.services.tickets import ticket_assign

    reviewer_required(user)
    with transaction.atomic():
        run = AgentRun.objects.select_for_update(of=("self",)).select_related("ticket__assignee").get(pk=run.pk)
        if run.status in RUN_FINAL and not (run.status == AgentRun.Status.ESCALATED and not run.outcome):
            raise ConflictError(TAKE_OVER_ENDED.format(status=run.get_status_display().lower()))
        require_not_claimed_by_another(run.ticket, user)
        if run.status not in RUN_FINAL:
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
        transaction.on_commit(lambda: take_over_note_send(run.pk, user.pk), robust=True)
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
    reviewer_required(user)
    if outcome not in AgentRun.Outcome.values:
        raise ApplicationError(OUTCOME_INVALID.format(choices=", ".join(AgentRun.Outcome.values)))
    run = AgentRun.objects.select_for_update(of=("self",)).select_related("ticket__assignee").get(pk=run.pk)
    if run.status not in RUN_CLOSABLE:
        raise ConflictError(CLOSE_NOT_ESCALATED.format(status=run.get_status_display().lower()))
    if run.outcome:
        raise ConflictError(ALREADY_CLOSED.format(outcome=run.get_outcome_display().lower()))
    require_not_claimed_by_another(run.ticket, user)
    run.outcome = outcome
    run.outcome_note = note.strip()
    run.closed_by = user
    run.closed_at = timezone.now()
    run.full_clean()
    run.save(update_fields=["outcome", "outcome_note", "closed_by", "closed_at", "updated_at"])
    audit_event_record(verb="run.closed", obj=run, payload={"outcome": outcome, "note": run.outcome_note}, user=user)
    return run
