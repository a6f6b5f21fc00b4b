from __future__ import annotations

from django.core.management.base import BaseCommand

from sandbox.seed import sandbox_seed


class Command(BaseCommand):
    help = "Create or refresh the sandbox's tenants, users, billing, configuration and logs (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        counts = sandbox_seed()
        summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Sandbox seeded: {summary}."))
