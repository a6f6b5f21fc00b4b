"""The tickets view at 100,000 tickets: time to serve its first page, a deep page (keyset), a search, the saved view
of shadow drafts to rate, and an evidence filter, through the real view and the Django test client.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/agentconsole_bench_tickets .venv/bin/python bench/tickets_view.py

The database is created if missing; the seed (BENCH_TICKETS tickets with a run and a proposal each) is made once and
reused. Prints the median of five requests per page, in milliseconds, and the queries each ran.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key-not-for-production")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")  # the test client speaks plain HTTP
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/agentconsole_bench_tickets")

TICKETS = int(os.environ.get("BENCH_TICKETS", "100000"))
BATCH = 5000


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


def _seed() -> None:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from agent.models import AgentRun, ProposedAction, Workflow
    from tickets.models import TenantLink, Ticket

    have = Ticket.objects.filter(external_id__startswith="b").count()
    if have >= TICKETS:
        return
    workflows = [
        Workflow.objects.get_or_create(slug=slug, defaults={"name": slug, "phase": phase, "runbook": "-"})[0]
        for slug, phase in (("trials", "triage"), ("cache", "autonomous"), ("billing", "shadow"))
    ]
    links = [
        TenantLink.objects.get_or_create(organization_id=f"bench-org-{n}", defaults={"tenant_id": f"tenant{n}"})[0]
        for n in range(200)
    ]
    now = timezone.now()
    statuses = ["completed", "completed", "escalated", "awaiting_approval", "completed", "failed"]
    for start in range(have, TICKETS, BATCH):
        tickets = Ticket.objects.bulk_create(
            Ticket(
                external_id=f"b{n}",
                subject=f"Bench problem {n} {'dashboard stale' if n % 7 == 0 else 'login issue'}",
                requester_id=str(n % 5000),
                tenant_link=links[n % len(links)],
                organization_id=links[n % len(links)].organization_id,
            )
            for n in range(start, min(start + BATCH, TICKETS))
        )
        runs = AgentRun.objects.bulk_create(
            AgentRun(
                ticket=t,
                workflow=workflows[t.pk % 3],
                phase=workflows[t.pk % 3].phase,
                trigger="manual",
                status=statuses[t.pk % len(statuses)],
            )
            for t in tickets
        )
        ProposedAction.objects.bulk_create(
            ProposedAction(
                run=r,
                tool="extend_trial",
                args={"tenant_id": "x", "days": 3},
                args_hash="h",
                risk="write",
                status="pending" if r.status == "awaiting_approval" else "executed",
            )
            for r in runs
        )
        ids = [t.pk for t in tickets]
        Ticket.objects.filter(pk__in=ids).update(created_at=now - timedelta(minutes=TICKETS - start))
        print(f"seeded {start + len(tickets)} / {TICKETS}", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> None:
    import django

    _ensure_database()
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    _seed()
    user, _ = User.objects.get_or_create(username="bench-reviewer")
    user.groups.add(Group.objects.get(name="reviewers"))
    client = Client()
    client.force_login(user)

    first = client.get("/tickets/").content.decode()
    deep = "/tickets/"
    for _ in range(40):  # walk 40 pages in, by keyset
        cursor = re.search(r'after=([\w-]+)" rel="next"', client.get(deep).content.decode()).group(1)
        deep = f"/tickets/?after={cursor}"
    pages = {
        "first page": "/tickets/",
        "page 41 (keyset)": deep,
        "search 'dashboard'": "/tickets/?q=dashboard",
        "Zendesk number": "/tickets/?q=%2354321",
        "tenant:tenant7": "/tickets/?q=tenant%3Atenant7",
        "outcome escalated": "/tickets/?outcome=escalated",
        "shadow drafts to rate": "/tickets/?view=needs_rating",
        "evidence approved_unedited": "/tickets/?workflow=trials&evidence=approved_unedited",
        "queue": "/",
    }
    print(f"\n{re.search(r'([0-9]+) tickets', first).group(0)} in the database")
    print(f"{'page':32} {'median ms':>10} {'queries':>8}")
    for name, url in pages.items():
        times = []
        for _ in range(5):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        print(f"{name:32} {statistics.median(times):10.1f} {len(queries):8d}")


if __name__ == "__main__":
    main()
