from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agent.company.openapi import catalogue_load
from agent.company.services import catalogue_import
from agentconsole.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Import the company's Admin API description (OpenAPI 3, a file or an http(s) URL) into the tool catalogue. "
        "Shows what changed (added, removed, schema changed); stores it only with --apply."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("source", help="Path or URL of the OpenAPI document (JSON or YAML).")
        parser.add_argument(
            "--pick",
            action="append",
            default=[],
            metavar="OPERATION_ID",
            help="Operations tools may call (repeat, or comma-separated; 'all' for every one). Earlier picks stay.",
        )
        parser.add_argument("--apply", action="store_true", help="Store the catalogue (without it: show the diff).")

    def handle(self, *args: object, **options: object) -> None:
        pick = [name.strip() for value in options["pick"] for name in str(value).split(",") if name.strip()]
        try:
            catalogue = catalogue_load(str(options["source"]))
            result = catalogue_import(
                catalogue=catalogue, source=str(options["source"]), pick=pick, apply=bool(options["apply"])
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{catalogue.title or 'OpenAPI document'} {catalogue.version}: "
                          f"{len(catalogue.operations)} operation(s).")  # fmt: skip
        for operation in catalogue.operations.values():
            notes = []
            if operation.generated_id:
                notes.append("no operationId in the document: name generated")
            if operation.unsupported:
                notes.append(f"cannot be a tool: {operation.unsupported}")
            picked = "*" if operation.operation_id in result.picked else " "
            suffix = f"  ({'; '.join(notes)})" if notes else ""
            self.stdout.write(f" {picked} {operation.operation_id}: {operation.method} {operation.path}{suffix}")
        self.stdout.write("Changes:" if not result.diff.empty else "No change to the stored catalogue.")
        for line in result.diff.lines():
            self.stdout.write(f"  {line}")
        for name in result.unpicked_in_use:
            self.stdout.write(self.style.WARNING(f"  the contract {name} calls a removed operation: it disappears."))
        if result.applied:
            self.stdout.write(self.style.SUCCESS(f"Stored; {len(result.picked)} operation(s) picked (*)."))
        else:
            self.stdout.write("Nothing stored: run again with --apply to store it.")
