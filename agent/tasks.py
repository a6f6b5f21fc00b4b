from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)

# Backoff for a model that is throttled or unreachable after the client's own retries.
_MODEL_RETRY_DELAYS = (5, 15, 45, 120, 300)


@shared_task(bind=True, acks_late=True, max_retries=len(_MODEL_RETRY_DELAYS))
def agent_run_advance_task(self, run_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Advance a run by one model turn, then enqueue the next turn if there is one.

    One task per turn keeps no worker pinned while a run waits; acks_late means a worker killed mid-turn leaves
    the message to be delivered again, and the loop resumes from the persisted transcript.
    """
    from agent.llm import EngineError
    from agent.loop import Outcome, run_advance
    from agent.models import AgentRun
    from agent.services import agent_run_escalate

    try:
        outcome = run_advance(run_id=run_id)
    except EngineError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise self.retry(countdown=_MODEL_RETRY_DELAYS[self.request.retries], exc=exc) from exc
        run = AgentRun.objects.select_related("ticket").get(pk=run_id)
        agent_run_escalate(run=run, reason=f"The model could not answer: {exc}")
        return "done"
    if outcome == Outcome.CONTINUE:
        agent_run_advance_task.delay(run_id)
    return str(outcome)
