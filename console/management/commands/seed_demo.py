from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from console.demo import DemoCredentials, demo_seed


class Command(BaseCommand):
    help = "Create or refresh the demo users, tenant links, workflows and tickets (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        credentials = DemoCredentials(
            admin_password=os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo-pass"),
            reviewer_password=os.environ.get("DEMO_REVIEWER_PASSWORD", "reviewer-demo-pass"),
        )
        demo_seed(credentials=credentials)
        self.stdout.write("Demo data is in place. Log in as:")
        self.stdout.write(f"  admin    / {credentials.admin_password}")
        self.stdout.write(f"  reviewer / {credentials.reviewer_password}")
