from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from agent.telemetry import run_task

logger = logging.getLogger(__name__)

# Backoff for a model that is throttled or unreachable after the client's own retries.
_MODEL_RETRY_DELAYS = (5, 15, 45, 120, 300)
# A run another worker holds (a redelivered message, or a lease a dead worker left): look again shortly.
_BUSY_RETRY_SECONDS = 3
_BUSY_MAX_RETRIES = 100
# The database went away: try the turn again after this long (the reconciler is the net if even that fails).
_DATABASE_RETRY_SECONDS = 5


def _drop_broken_connections() -> None:
    """Close every database connection that saw an error, without sending anything over it: the next query
    opens a fresh one. Asking a dead connection first (as Django's own check does) can hang on a cut network."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred or connection.connection is None:
            connection.close()
    close_old_connections()


@shared_task(bind=True, acks_late=True, max_retries=_BUSY_MAX_RETRIES)
@run_task
def agent_run_advance_task(self, run_id: int, dispatch_token: str = "") -> str:  # noqa: ANN001 - Celery's bound task
    """Advance a run by one model turn, then dispatch the next turn if there is one.

    One task per turn keeps no worker pinned while a run waits; acks_late means a worker killed mid-turn leaves
    the message to be delivered again, and the loop resumes from the persisted transcript. A message whose
    dispatch token is no longer the run's was superseded (the reconciler sent a newer one) and does nothing:
    run_task answers it from the read it makes anyway.
    """
    from agent.llm.conversation import EngineError
    from agent.loop import Outcome, run_advance
    from agent.services.runs import agent_run_dispatch
    from tickets.helpdesk import HelpdeskError

    try:
        outcome = run_advance(run_id=run_id)
        if outcome == Outcome.CONTINUE:
            agent_run_dispatch(run_id=run_id)
    except HelpdeskError as exc:
        # The ticket could not be read from the helpdesk and the run has no earlier version to work from.
        if exc.retryable and self.request.retries < len(_MODEL_RETRY_DELAYS):
            countdown = max(_MODEL_RETRY_DELAYS[self.request.retries], int(exc.retry_after or 0))
            raise self.retry(countdown=countdown, exc=exc) from exc
        return _escalate(run_id, f"The ticket could not be read from the helpdesk: {exc.message}")
    except EngineError as exc:
        if exc.retryable and self.request.retries < len(_MODEL_RETRY_DELAYS):
            raise self.retry(countdown=_MODEL_RETRY_DELAYS[self.request.retries], exc=exc) from exc
        return _escalate(run_id, f"The model could not answer: {exc}")
    except (OperationalError, InterfaceError) as exc:
        # The database is unreachable (or failed over): no point escalating through it. Reconnect and try the
        # turn again; the persisted transcript and the lease make the retry resume, never repeat.
        _drop_broken_connections()
        logger.warning("run %s: database error, retrying the turn: %s", run_id, exc)
        raise self.retry(countdown=_DATABASE_RETRY_SECONDS, exc=exc) from exc
    except Exception:
        # A bug must not leave a run silently "running": hand the ticket to humans and keep the traceback.
        logger.exception("agent run %s failed", run_id)
        _drop_broken_connections()
        return _escalate(run_id, "The agent hit an internal error; see the worker log.")
    if outcome == Outcome.BUSY and self.request.retries < self.max_retries:
        raise self.retry(countdown=_BUSY_RETRY_SECONDS)
    return str(outcome)


def _escalate(run_id: int, reason: str) -> str:
    """Hand the run to humans after its turn failed, holding its lease while doing so. The failed advance released
    its own lease (or had lost it): a run another worker claimed meanwhile is that worker's, and is left to it."""
    from django.conf import settings

    from agent.services.leases import agent_run_claim, agent_run_release
    from agent.services.runs import agent_run_escalate

    try:
        run = agent_run_claim(run_id=run_id, lease_seconds=settings.AGENT_LEASE_SECONDS)
        if run is None:
            # Over already, or held by a live lease: another worker took the run while this one failed.
            logger.warning("run %s: not escalated (%s): it is over or another worker holds it", run_id, reason)
            return "done"
        try:
            agent_run_escalate(run=run, reason=reason)
        finally:
            agent_run_release(run_id=run_id, token=run.lease_token, active_ms=0)  # a no-op once escalated
    except (OperationalError, InterfaceError):
        # Escalating needs the database too: leave the run to the reconciler, which finds it once the lease ends.
        _drop_broken_connections()
        logger.warning("run %s: could not escalate (database error); the reconciler will retry", run_id)
    return "done"


@shared_task(bind=True, acks_late=True, max_retries=3)
def zendesk_event_process_task(self, event_pk: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Apply a stored webhook event and start the run it calls for. Any copy of the message after the first finds
    the event processed and does nothing; an event whose message is lost is sent again by the sweep."""
    from agent.services.intake import zendesk_event_process

    try:
        result = zendesk_event_process(event_pk=event_pk)
    except (OperationalError, InterfaceError) as exc:
        _drop_broken_connections()
        raise self.retry(countdown=_DATABASE_RETRY_SECONDS, exc=exc) from exc
    if result is None:
        return "already processed"
    return "ignored" if result.ignored_reason else ("run started" if result.run_id else "applied")


@shared_task(ignore_result=True)
def zendesk_events_redispatch_task() -> str:
    """The periodic sweep (celery beat): send again the events stored but never processed."""
    from agent.services.intake import zendesk_events_redispatch

    return f"sent {len(zendesk_events_redispatch())}"


@shared_task(ignore_result=True)
def agent_runs_reconcile_task() -> str:
    """The periodic sweep (celery beat): restart runs nothing is working on, escalate runs that keep failing."""
    from agent.reconciler import agent_runs_reconcile

    result = agent_runs_reconcile()
    return f"recovered {len(result.recovered)}, escalated {len(result.escalated)}"


# Retries of a notification whose channel failed in a way that may pass (Slack 5xx/429, a mail server down).
_NOTIFY_RETRY_DELAYS = (30, 120, 600)


@shared_task(bind=True, acks_late=True, max_retries=len(_NOTIFY_RETRY_DELAYS))
def approval_notify_task(self, action_id: int, kind: str = "pending") -> str:  # noqa: ANN001 - Celery's bound task
    """Tell reviewers a decision waits; channels already sent are never sent again on a retry."""
    from agent.notifications import approval_notify

    result = approval_notify(action_id=action_id, kind=kind)
    if result.failed and self.request.retries < self.max_retries:
        raise self.retry(countdown=_NOTIFY_RETRY_DELAYS[self.request.retries])
    return ",".join(result.sent) or "nothing sent"


@shared_task(acks_late=True)
def proposed_action_read_current_task(action_id: int) -> str:
    from agent.services.actions import proposed_action_read_current

    action = proposed_action_read_current(action_id=action_id)
    return "read" if action is not None and action.current_state else "nothing to read"


@shared_task(acks_late=True)
def approval_sla_sweep_task() -> int:
    """Celery beat runs this every APPROVAL_SLA_SWEEP_SECONDS."""
    from agent.notifications import approval_sla_sweep

    return len(approval_sla_sweep())


@shared_task(acks_late=True)
def agent_run_take_over_note_task(run_id: int, user_id: int) -> str:
    from django.contrib.auth import get_user_model

    from agent.models import AgentRun
    from agent.services.runs import agent_run_take_over_note

    run = AgentRun.objects.select_related("ticket").get(pk=run_id)
    problem = agent_run_take_over_note(run=run, user=get_user_model().objects.get(pk=user_id))
    if problem:
        logger.warning("run %s: the take-over note could not be posted: %s", run_id, problem)
    return problem or "noted"


@shared_task(bind=True, acks_late=True, max_retries=3)
def replay_execute_task(self, replay_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Work a replay (or a suite run) in the background; a redelivered message carries on where it stopped."""
    from agent.replay import replay_execute, replay_fail

    try:
        return replay_execute(replay_id=replay_id).status
    except (OperationalError, InterfaceError) as exc:
        _drop_broken_connections()
        raise self.retry(countdown=_DATABASE_RETRY_SECONDS, exc=exc) from exc
    except Exception as exc:
        logger.exception("replay %s failed", replay_id)
        replay_fail(replay_id=replay_id, error=f"{type(exc).__name__}: {exc}")
        return "failed"


@shared_task(acks_late=True)
def suite_rerun_task(replay_id: int) -> int | None:
    """A run a skipped suite case was waiting for stopped: run the suite again (once; see agent.suites)."""
    from agent.suites import suite_rerun

    replay = suite_rerun(replay_id=replay_id)
    return replay.pk if replay is not None else None
