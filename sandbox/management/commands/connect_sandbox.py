from __future__ import annotations

from django.core.management.base import BaseCommand

from sandbox.company import sandbox_connect


class Command(BaseCommand):
    help = "Connect the sandbox company: import its OpenAPI document and its contract file (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(sandbox_connect())
