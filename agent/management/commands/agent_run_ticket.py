from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from agent.loop import Outcome, run_advance
from agent.selectors import run_transcript
from agent.services.intake import agent_run_create_manual
from tickets.models import Ticket


class Command(BaseCommand):
    help = "Run the agent on one ticket synchronously, in this process, and print the transcript (debugging)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("ticket", help="The console's ticket id, or the helpdesk's id with --external.")
        parser.add_argument("--external", action="store_true", help="Look the ticket up by its helpdesk id.")
        parser.add_argument("--max-turns", type=int, default=50)

    def handle(self, *args: object, **options: object) -> None:
        lookup = {"external_id": options["ticket"]} if options["external"] else {"pk": options["ticket"]}
        ticket = Ticket.objects.filter(**lookup).first()
        if ticket is None:
            raise CommandError(f"No ticket {options['ticket']}.")
        run = agent_run_create_manual(ticket=ticket)
        self.stdout.write(
            f"Run {run.pk} on ticket #{ticket.external_id} — phase {run.phase}, workflow "
            f"{run.workflow.slug if run.workflow else 'none'}"
        )
        outcome = Outcome.CONTINUE
        for _ in range(int(options["max_turns"])):
            outcome = run_advance(run_id=run.pk)
            if outcome != Outcome.CONTINUE:
                break
        for step in run_transcript(run_id=run.pk):
            detail = step.content
            if step.kind == "action":
                detail = f"{step.tool_name} {json.dumps(step.tool_input, sort_keys=True)}"
            elif step.kind == "observation":
                detail = f"{step.tool_name} -> {json.dumps(step.tool_output, default=str)[:600]}"
            self.stdout.write(f"{step.index:>3} {step.kind:<11} {detail}")
        run.refresh_from_db()
        self.stdout.write(f"Outcome: {outcome}; run status {run.status}. {run.status_reason}")
