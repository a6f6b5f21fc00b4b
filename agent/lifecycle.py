"""Every status of a run and of a proposed action, and every move between them, in two plain tables.

Services change a status only after `run_transition_check` / `action_transition_check` allowed the move; the sets
other code asks about (is a run over? may a worker claim it?) are derived from the same tables, so a new status is
added in one place. A plain table rather than django-fsm: the moves are pure data a test walks, and the side effects
of a move (audit, telemetry, notifications) stay in the services, never in the model.
"""

from __future__ import annotations

from agent.models import AgentRun, ProposedAction
from agentconsole.errors import InvalidTransition

RUN_TRANSITION_NOT_ALLOWED = "A run cannot move from {current} to {target}."
ACTION_TRANSITION_NOT_ALLOWED = "A proposed action cannot move from {current} to {target}."

Run = AgentRun.Status
Action = ProposedAction.Status

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    # A reviewer may take over any run that has not ended; the agent hands any such run to humans.
    Run.QUEUED: frozenset({Run.RUNNING, Run.ESCALATED, Run.TAKEN_OVER}),
    Run.RUNNING: frozenset({Run.AWAITING_APPROVAL, Run.COMPLETED, Run.ESCALATED, Run.TAKEN_OVER}),
    Run.AWAITING_APPROVAL: frozenset({Run.RUNNING, Run.ESCALATED, Run.TAKEN_OVER}),
    Run.COMPLETED: frozenset(),
    Run.ESCALATED: frozenset(),  # a human closes it with an outcome (agent_run_close): its status stays
    Run.TAKEN_OVER: frozenset(),
}

# Where a call starts: recorded as a dry run (shadow), proposed, or allowed to run (by the gate or a pre-approval).
ACTION_INITIAL = frozenset({Action.DRY_RUN, Action.PENDING, Action.APPROVED})
ACTION_TRANSITIONS: dict[str, frozenset[str]] = {
    Action.DRY_RUN: frozenset(),
    Action.PENDING: frozenset({Action.APPROVED, Action.REJECTED, Action.RESPONDED, Action.WITHDRAWN}),
    # Run and settled; refused by the gate after approval (failed); withdrawn when the run ended before it started.
    Action.APPROVED: frozenset({Action.EXECUTED, Action.FAILED, Action.UNCERTAIN, Action.WITHDRAWN}),
    # Reconciled by re-reading state: it took effect, it did not, or it is still unknown (sent again only with the
    # same idempotency key).
    Action.UNCERTAIN: frozenset({Action.EXECUTED, Action.FAILED, Action.UNCERTAIN}),
    Action.EXECUTED: frozenset(),
    Action.FAILED: frozenset(),
    Action.REJECTED: frozenset(),
    Action.RESPONDED: frozenset(),
    Action.WITHDRAWN: frozenset(),
}

# A run that is over: nothing advances it again.
RUN_FINAL = frozenset(status for status, targets in RUN_TRANSITIONS.items() if not targets)
# A run that stopped advancing: over, or waiting for a reviewer (what a replay answers from, agent.replay).
RUN_STOPPED = RUN_FINAL | {Run.AWAITING_APPROVAL}
# A run a worker may claim to advance it: every run that is not over.
RUN_CLAIMABLE = frozenset(RUN_TRANSITIONS) - RUN_FINAL
# A run a worker should be on: queued, or in a model turn.
RUN_WORKING = frozenset({Run.QUEUED, Run.RUNNING})
# A run people hold until one of them closes it with an outcome.
RUN_CLOSABLE = frozenset({Run.ESCALATED, Run.TAKEN_OVER})
# Calls that have no observation yet: waiting for a reviewer, or allowed and still to run.
ACTION_UNSETTLED = frozenset({Action.PENDING, Action.APPROVED})


def run_transition_check(*, current: str, target: str) -> None:
    if target not in RUN_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(RUN_TRANSITION_NOT_ALLOWED.format(current=current, target=target))


def action_transition_check(*, current: str, target: str) -> None:
    if target not in ACTION_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(ACTION_TRANSITION_NOT_ALLOWED.format(current=current, target=target))


def action_initial_check(*, status: str) -> None:
    if status not in ACTION_INITIAL:
        raise InvalidTransition(ACTION_TRANSITION_NOT_ALLOWED.format(current="(new)", target=status))
