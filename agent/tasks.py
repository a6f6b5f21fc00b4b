from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def agent_run_execute_task(run_id: int) -> None:
    """Work one agent run. The loop that does the work arrives with the agent engine (issue 4); until then the
    run stays queued and visible in the console, so nothing is lost and a reviewer can pick it up."""
    from agent.models import AgentRun

    run = AgentRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("agent run %s no longer exists", run_id)
        return
    logger.info("agent run %s for ticket %s is queued; no engine is installed yet", run.pk, run.ticket_id)
