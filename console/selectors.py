from __future__ import annotations

from django.db.models import Count, QuerySet

from tickets.models import Ticket


def ticket_list(*, limit: int = 50) -> QuerySet[Ticket]:
    """Newest tickets with their tenant and a count of runs, in a fixed number of queries."""
    return (
        Ticket.objects.select_related("tenant_link")
        .annotate(run_count=Count("runs"))
        .order_by("-created_at", "-id")[:limit]
    )
