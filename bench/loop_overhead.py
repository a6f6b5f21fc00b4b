"""Per-step overhead of the agent loop, persistence included, with a model that answers instantly.

Runs many tickets through run_advance in this process on a real database, with the offline engine and a tool that
reads only the console's own database (search_runbooks), so the figure is the loop's own cost: claiming the
run, building the conversation, the gate, the proposed-action and step rows, audit events, releasing the run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentconsole_bench .venv/bin/python bench/loop_overhead.py

The database is created if missing and emptied of runs first. Prints steps/s, ms per step and per ticket.
BENCH_OTLP=1 turns tracing on, exporting every span over OTLP/HTTP to a local sink, to measure what traces cost.
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
os.environ["AGENT_LLM_PROVIDER"] = "offline"

TICKETS = int(os.environ.get("BENCH_TICKETS", "200"))
STEPS_PER_TICKET = 4  # tool calls in the playbook


def _ensure_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
        dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def _otlp_sink() -> list[int]:
    """A local OTLP/HTTP receiver that only counts what it is sent (the cost measured is the exporter's)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = [0, 0]  # requests, bytes

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received[0] += 1
            received[1] += len(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    return received


def main() -> None:
    import django

    otlp = _otlp_sink() if os.environ.get("BENCH_OTLP") == "1" else None
    _ensure_database()
    django.setup()
    if otlp is not None:
        from agentconsole.tracing import tracing_configure

        tracing_configure(process="bench")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from agent.loop import Outcome, run_advance
    from agent.models import AgentRun, Runbook, Workflow
    from tickets.models import TenantLink, Ticket

    AgentRun.objects.all().delete()
    Ticket.objects.filter(external_id__startswith="bench-").delete()
    Runbook.objects.get_or_create(
        slug="bench", defaults={"title": "Cache", "body": "Reset the cache.", "tags": ["cache"]}
    )
    workflow, _ = Workflow.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "phase": "triage",
            "runbook": "Search the runbooks.",
            "match_tags": ["bench"],
            "playbook": [{"tool": "search_runbooks", "args": {"query": "cache"}}] * STEPS_PER_TICKET,
        },
    )
    link, _ = TenantLink.objects.get_or_create(organization_id="bench-org", defaults={"tenant_id": "acme"})
    runs = [
        AgentRun.objects.create(
            ticket=Ticket.objects.create(
                external_id=f"bench-{i}",
                subject="Stale cache",
                tags=["bench"],
                tenant_link=link,
                organization_id="bench-org",
            ),
            workflow=workflow,
            phase="triage",
            trigger="manual",
        )
        for i in range(TICKETS)
    ]
    per_ticket = []
    started = time.perf_counter()
    for run in runs:
        t0 = time.perf_counter()
        while run_advance(run_id=run.pk) == Outcome.CONTINUE:
            pass
        per_ticket.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    if otlp is not None:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()
        print(f"traces on: {otlp[0]} OTLP exports, {otlp[1] / 1024:.0f} KiB")
    steps = sum(AgentRun.objects.get(pk=r.pk).steps.count() for r in runs)
    turns = TICKETS * (STEPS_PER_TICKET + 1)
    done = AgentRun.objects.filter(pk__in=[r.pk for r in runs], status="completed").count()
    print(f"tickets: {TICKETS} ({done} completed), transcript steps: {steps}, model turns: {turns}")
    print(f"elapsed: {elapsed:.2f} s, {steps / elapsed:.0f} steps/s, {turns / elapsed:.0f} turns/s on one process")
    print(f"per step: {1000 * elapsed / steps:.2f} ms, per model turn: {1000 * elapsed / turns:.2f} ms")
    print(
        f"per ticket: median {1000 * statistics.median(per_ticket):.1f} ms, p90 "
        f"{1000 * statistics.quantiles(per_ticket, n=10)[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
