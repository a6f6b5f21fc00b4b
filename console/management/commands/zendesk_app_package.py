"""Package the Zendesk sidebar app (zendesk_app/) for upload as a private app, with the console's address in it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

APP_DIR = Path(settings.BASE_DIR) / "zendesk_app"
URL_INVALID = "--console-url must be an https:// address (http:// only for localhost), got {url!r}."


class Command(BaseCommand):
    help = "Write the Zendesk sidebar app as a zip whose location URL is this console's sidebar page."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--console-url", required=True, help="The console's public address, https://…")
        parser.add_argument("--output", default=str(Path(settings.VAR_DIR) / "zendesk_app.zip"))
        parser.add_argument("--author-email", default="", help="Where Zendesk admins write about the app.")

    def handle(self, *args: object, **options: str) -> None:
        base = options["console_url"].rstrip("/")
        parts = urlsplit(base)
        local = parts.hostname in ("localhost", "127.0.0.1")
        if not parts.netloc or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local):
            raise CommandError(URL_INVALID.format(url=options["console_url"]))
        manifest = json.loads((APP_DIR / "manifest.json").read_text())
        manifest["location"]["support"]["ticket_sidebar"]["url"] = base + reverse("console:zendesk-sidebar")
        manifest["author"]["url"] = base + "/"
        if options["author_email"]:
            manifest["author"]["email"] = options["author_email"]
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
            for path in sorted(APP_DIR.rglob("*")):
                relative = path.relative_to(APP_DIR).as_posix()
                if path.is_file() and relative not in ("manifest.json", "README.md"):
                    archive.write(path, relative)
        self.stdout.write(f"Wrote {output} (sidebar page: {manifest['location']['support']['ticket_sidebar']['url']})")
