from __future__ import annotations

from agent.models import Step, Workflow
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


def run_transcript(*, run_id: int) -> list[Step]:
    return list(Step.objects.filter(run_id=run_id).order_by("index"))
