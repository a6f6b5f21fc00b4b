from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from agent.company.services import contracts_import
from agentconsole.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Check the company's effect contracts (a YAML file) against the imported catalogue and store a new version "
        "of each changed tool. A file with any problem stores nothing and lists every problem."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("file", help="The contract file (YAML).")
        parser.add_argument("--check", action="store_true", help="Only check the file; store nothing.")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read the contract file {path}: {exc}") from exc
        try:
            changes = contracts_import(text=text, source=str(path), apply=not options["check"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for change in changes:
            self.stdout.write(f"  {change.line()}")
        if options["check"]:
            self.stdout.write(self.style.SUCCESS(f"The contract file is valid: {len(changes)} tool(s)."))
        else:
            self.stdout.write(self.style.SUCCESS("Stored."))
