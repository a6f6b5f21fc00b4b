from __future__ import annotations

from django.core.management.base import BaseCommand

from agent.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the dashboard's weekly rollups from every run and decision (the services keep them up to date; "
        "rebuild after importing runs in bulk or changing TIME_ZONE, which moves the weeks' edges)."
    )

    def handle(self, *args: object, **options: object) -> None:
        usage, latency = rollups_rebuild()
        self.stdout.write(f"Rebuilt {usage} usage rows and {latency} latency buckets.")
