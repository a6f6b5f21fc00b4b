from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from agent.models import ReplayItem, Workflow
from agent.replay import replay_execute
from agent.suites import suite_run_start
from agent.versions import workflow_version_ensure


class Command(BaseCommand):
    help = (
        "Run workflows' regression suites headless (for CI), in this process, against the version in force. Nothing "
        "is written anywhere but the console's own database. Exits 1 when a case fails."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("workflows", nargs="*", help="Workflow slugs; none: every enabled workflow.")

    def handle(self, *args: object, **options: object) -> None:
        slugs = list(options["workflows"])
        workflows = list(Workflow.objects.filter(slug__in=slugs) if slugs else Workflow.objects.filter(enabled=True))
        unknown = sorted(set(slugs) - {w.slug for w in workflows})
        if unknown:
            raise CommandError(f"No workflow {', '.join(unknown)}.")
        failed = skipped_all = 0
        for workflow in sorted(workflows, key=lambda w: w.slug):
            version = workflow_version_ensure(workflow=workflow)
            suite = suite_run_start(version=version, user=None)
            if suite is None:
                self.stdout.write(f"{workflow.slug} v{version.number}: no regression cases")
                continue
            suite = replay_execute(replay_id=suite.pk)
            items = list(suite.items.select_related("ticket").order_by("position"))
            bad = [item for item in items if item.case_result == ReplayItem.CaseResult.FAILED]
            failed += len(bad)
            skipped = sum(1 for item in items if item.case_result == ReplayItem.CaseResult.SKIPPED)
            skipped_all += skipped
            passing = len(items) - len(bad) - skipped
            note = f" ({skipped} skipped: no recorded run to replay)" if skipped else ""
            self.stdout.write(f"{workflow.slug} v{version.number}: {passing}/{len(items)} cases pass{note}")
            for item in items:
                mark = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(item.case_result, "----")
                self.stdout.write(f"  {mark} case {item.case_id} on ticket #{item.ticket.external_id}")
                for failure in item.failures or ([item.error] if item.error else []):
                    self.stdout.write(f"       {failure}")
        if failed:
            self.stderr.write(f"{failed} regression case(s) failed.")
            sys.exit(1)
        if skipped_all:  # not a regression, but not a pass either: those cases still block promotion
            self.stdout.write(f"No case failed; {skipped_all} case(s) skipped (no recorded run to replay).")
            return
        self.stdout.write("Every suite passes.")
