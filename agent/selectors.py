from __future__ import annotations

from agent.models import Workflow
from tickets.models import Ticket


def workflow_match(*, ticket: Ticket) -> Workflow | None:
    """The enabled workflow for a ticket: a tag match wins over a keyword match; ties go to the oldest."""
    workflows = list(Workflow.objects.filter(enabled=True).order_by("created_at", "id"))
    tags = set(ticket.tags)
    for workflow in workflows:
        if tags.intersection(workflow.match_tags):
            return workflow
    text = f"{ticket.subject}\n{ticket.description}".lower()
    for workflow in workflows:
        if any(keyword.lower() in text for keyword in workflow.match_keywords if keyword.strip()):
            return workflow
    return None
