"""A call's observation written with what goes with it: one statement on PostgreSQL.

After a call, the loop writes up to three things that used to be a statement each: the call's settlement with its
audit entry (held by proposed_action_settle_later), the observation step the model reads next with the lease's
renewal, and, after the turn's last call, the run's move back to running with its audit entry. Here they are one
data-modifying WITH, all of it conditional on this worker's lease: a worker whose lease was taken writes none of it.
"""

from __future__ import annotations

from typing import Any

from agent.models import AgentRun, Step
from agent.services.actions import Settlement, settlement_sql, settlement_write
from agent.services.leases import lease_renewal, lease_renewed
from agent.services.runs import agent_run_transition_applied, agent_run_transition_parts
from agent.services.transcript import step_held, step_new
from agentconsole import rawsql
from audit.models import AuditEvent
from audit.services import audit_insert_sql


def observation_record(
    *, run: AgentRun, settlement: Settlement | None, resume_reason: str = "", **fields: Any
) -> Step | None:
    """The observation step of `fields` (step_append's), written with the held `settlement` and, given a
    `resume_reason`, the run's move from waiting back to running, and the lease's renewal when one is due after a
    slow call: one statement (PostgreSQL), conditional on this worker's lease (and, for the move, on the run still
    waiting). None, nothing written, when that condition failed: the caller decides again step by step (the
    settlement then written on its own, as before, and the lease's loss raised by the step's own renewal)."""
    parts = (
        agent_run_transition_parts(run=run, status=AgentRun.Status.RUNNING, reason=resume_reason)
        if resume_reason
        else None
    )
    renewal = lease_renewal(run, slow_call_next=False)
    sets, params = [], []
    if renewal is not None:
        sets.append("lease_expires_at = %s")
        params.append(renewal[1][0])
    if parts is not None:
        sets += parts.sets
        params += parts.params
    where = "id = %s AND lease_token = %s" + (" AND status = %s" if parts is not None else "")
    params += [run.pk, run.lease_token, *([parts.previous] if parts is not None else [])]
    if sets:
        guard = f'UPDATE "agent_agentrun" SET {", ".join(sets)} WHERE {where} RETURNING id'  # noqa: S608 - names of ours
    else:
        guard = f'SELECT id FROM "agent_agentrun" WHERE {where}'  # noqa: S608 - as above
    ctes = [f"guard AS ({guard})"]
    if settlement is not None:
        update, update_params, audit, audit_params = settlement_sql(settlement, guard="guard")
        ctes += [f"settled AS ({update})", f"settled_audit AS ({audit})"]
        params += [*update_params, *audit_params]
    if parts is not None:
        audit, audit_params = audit_insert_sql(
            "guard", verb="run.status_changed", model=AgentRun, payload=parts.payload,
            actor_kind=AuditEvent.ActorKind.AGENT,
        )  # fmt: skip
        ctes.append(f"resumed_audit AS ({audit})")
        params += audit_params
    step = step_new(run, Step.Kind.OBSERVATION, **fields)
    names, values, step_params = rawsql.insert_parts([step])
    settled = "(SELECT count(*) FROM settled)" if settlement is not None else "1"
    rows = rawsql.execute(
        f"WITH {', '.join(ctes)} INSERT INTO {rawsql.table(Step)} ({names}) "  # noqa: S608 - names from the models' meta
        f"SELECT v.* FROM guard CROSS JOIN (VALUES {values}) v RETURNING id, {settled}",
        [*params, *step_params],
    )
    if not rows:
        if settlement is not None:
            settlement_write(settlement)
        return None
    if renewal is not None:
        lease_renewed(run, True)
    rawsql.inserted(step, rows[0][0])
    step_held(run, step)
    if settlement is not None and not rows[0][1]:
        settlement_write(settlement)  # the action moved on meanwhile: decided again on its locked row
    if parts is not None:
        agent_run_transition_applied(run=run, parts=parts)
    return step
