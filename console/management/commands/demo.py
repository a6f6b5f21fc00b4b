from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class _Stop(Exception):
    """SIGTERM or SIGHUP reached the demo: stop the web server and the worker as Ctrl-C does."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


# Looked up here, in the parent: the child only calls it between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child, before exec: on Linux, be sent SIGTERM when the demo process dies, however it dies (even
    SIGKILL), so no web server or worker outlives it. Elsewhere, the signal handlers in handle() stop them."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = "Migrate, seed, then run the web server and a Celery worker (with the scheduler) together until Ctrl-C."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args: object, **options: object) -> None:
        for key, folder in settings.CELERY_BROKER_TRANSPORT_OPTIONS.items():
            if key.endswith("_folder") or key.startswith("data_folder"):
                os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.dirname(settings.CELERY_BEAT_SCHEDULE_FILENAME), exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        if apps.is_installed("sandbox"):
            # The stand-in company (sandbox/settings_demo.py installs it) seeds itself with its own command.
            call_command("seed_sandbox")
        call_command("seed_demo")
        address = f"{options['host']}:{options['port']}"
        python = sys.executable
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop)
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "agentconsole",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "threads",
                "--concurrency",
                "8",
                # Gossip and mingle sync workers with each other, which this product never needs; gossip's fanout
                # channel is what kombu's Redis transport fails to close on a broker drop (see the README).
                "--without-gossip",
                "--without-mingle",
                # The scheduler runs inside this one worker (the reconciler that restarts stranded runs, the
                # approval SLA sweep): fine for one demo process; production runs one `celery beat` beside them.
                "--beat",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
            preexec_fn=_die_with_parent,
        )
        web = subprocess.Popen(
            [python, "manage.py", "runserver", "--noreload", address],
            preexec_fn=_die_with_parent,
        )
        self.stdout.write(self.style.SUCCESS(f"\nAgent Console is running at http://{address}/  (Ctrl-C stops it)"))
        self.stdout.write(f"Django admin: http://{address}/admin/")
        self.stdout.write(f"Broker: {settings.CELERY_BROKER_URL}   Database: {settings.DATABASES['default']['NAME']}")
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            self.stdout.write(f"Approval e-mails are written to {settings.EMAIL_FILE_PATH}/")
        self.stdout.write(
            f"Send a signed test ticket: DJANGO_SETTINGS_MODULE={settings.SETTINGS_MODULE} "
            f"ZENDESK_WEBHOOK_SECRET={settings.ZENDESK_WEBHOOK_SECRET} .venv/bin/python manage.py "
            f"zendesk_send_event --url http://{address}/api/webhooks/zendesk\n"
        )
        children = [web, worker]
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except (KeyboardInterrupt, _Stop):
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
        failed = [child.args[2] for child in children if child.returncode not in (0, -signal.SIGTERM, None)]
        if failed:
            self.stderr.write(f"Stopped because a process exited: {', '.join(map(str, failed))}")
