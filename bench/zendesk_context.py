"""Cost of reading a ticket from Zendesk, per ticket version: a cold read of a long ticket, a run turn on an
unchanged ticket (no call at all), and a re-read after a change (the comments already stored are kept).

Zendesk is the local stand-in the tests use (tests/zendesk_standin.py) on 127.0.0.1, so the figures are this
code's cost plus loopback HTTP, not Zendesk's latency.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentconsole_bench .venv/bin/python bench/zendesk_context.py

Prints requests and milliseconds for each case; BENCH_COMMENTS sets the ticket's length (default 500).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/agentconsole_bench")

COMMENTS = int(os.environ.get("BENCH_COMMENTS", "500"))
ROUNDS = 5


def main() -> None:
    import django

    from bench.loop_overhead import _ensure_database

    _ensure_database()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tests.zendesk_standin import serve_zendesk
    from tickets.helpdesk import ticket_context_ensure
    from tickets.models import Ticket

    for zendesk in serve_zendesk():
        settings.ZENDESK_API_URL, settings.ZENDESK_EMAIL, settings.ZENDESK_API_TOKEN = zendesk.url, "b@x.io", "t"
        zendesk.add_user(1, name="Requester", email="requester@example.com")
        zendesk.add_user(2, name="Support", email="support@example.com", role="agent")
        zendesk.organizations["3"] = {"id": 3, "name": "Org", "external_id": "org", "organization_fields": {}}
        cold, cached, changed = [], [], []
        for round_ in range(ROUNDS):
            external_id = 880_000 + round_
            Ticket.objects.filter(external_id=str(external_id)).delete()
            zendesk.add_ticket(external_id, requester_id=1, organization_id=3, updated_at="2026-11-23T10:00:00Z")
            for n in range(COMMENTS):
                zendesk.add_comment(external_id, body=f"Comment {n}", author_id=1 + n % 2, public=n % 3 != 0)
            ticket = Ticket.objects.create(external_id=str(external_id), subject="Bench")
            cold.append(_timed(zendesk, lambda t=ticket: ticket_context_ensure(ticket=t)))
            ticket.refresh_from_db()
            cached.append(_timed(zendesk, lambda t=ticket: ticket_context_ensure(ticket=t)))
            zendesk.add_comment(external_id, body="One more", author_id=1)
            zendesk.tickets[str(external_id)]["updated_at"] = "2026-11-23T11:00:00Z"
            Ticket.objects.filter(pk=ticket.pk).update(external_updated_at="2026-11-23T11:00:00Z")
            ticket.refresh_from_db()
            changed.append(_timed(zendesk, lambda t=ticket: ticket_context_ensure(ticket=t)))
            assert ticket.comments.count() == COMMENTS + 1
        for name, figures in (("cold read", cold), ("unchanged version", cached), ("after a change", changed)):
            requests = figures[0][0]
            millis = statistics.median(ms for _, ms in figures)
            print(f"{name:>18}: {requests} requests, median {millis:.1f} ms ({COMMENTS} comments, {ROUNDS} rounds)")


def _timed(zendesk: object, call: object) -> tuple[int, float]:
    before = len(zendesk.requests)  # type: ignore[attr-defined]
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return len(zendesk.requests) - before, 1000 * (time.perf_counter() - started)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
