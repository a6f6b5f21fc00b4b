from __future__ import annotations

from django.core.management.base import BaseCommand

from sandbox.company import sandbox_connect
from sandbox.seed import sandbox_seed


class Command(BaseCommand):
    help = (
        "Create or refresh the sandbox's tenants, users, billing, configuration and logs, and connect it as the "
        "company (its OpenAPI document and contracts). Idempotent."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts = sandbox_seed()
        summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Sandbox seeded: {summary}."))
        self.stdout.write(sandbox_connect())
