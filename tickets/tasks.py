from __future__ import annotations

from celery import shared_task

_RETRY_DELAYS = (10, 30, 120, 300)


@shared_task(bind=True, acks_late=True, max_retries=len(_RETRY_DELAYS))
def ticket_context_refresh_task(self, ticket_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Read a ticket from the helpdesk after a webhook reported a newer version: the next run starts from it
    without a call, and the console shows it. Nothing is read when the version held is already current."""
    from tickets.helpdesk import HelpdeskError, ticket_context_ensure
    from tickets.models import Ticket

    ticket = Ticket.objects.select_related("tenant_link").filter(pk=ticket_id).first()
    if ticket is None:
        return "gone"
    try:
        ticket_context_ensure(ticket=ticket)
    except HelpdeskError as exc:
        if exc.retryable and self.request.retries < len(_RETRY_DELAYS):
            countdown = max(_RETRY_DELAYS[self.request.retries], int(exc.retry_after or 0))
            raise self.retry(countdown=countdown, exc=exc) from exc
        return "failed"
    return "read"
