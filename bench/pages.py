"""Every console page and API list at 100,000 tickets and 1,000,000 transcript steps: p95 and query counts.

The seed is generated inside PostgreSQL (INSERT ... SELECT over generate_series: a minute or two, not hours) and
kept for the next run: 100k tickets with a customer comment, a run and a proposed action each (statuses, phases,
verifications, edits and ratings mixed as in real use), 10 steps per run, 3 audit events per run, and one ticket
with a 500-step transcript. Each run first VACUUMs (ANALYZE) the database, as autovacuum keeps a live one, and
freezes the garbage collector's start-up heap, as agentconsole/wsgi.py does. Pages are served through the real views
by Django's test client as a reviewer (or an admin for admin pages), each --requests times; anchor: `SELECT 1`
through the same client stack (/healthz/), measured in the same rounds.

    .venv/bin/python bench/pages.py [--tickets 100000] [--steps-per-run 10] [--requests 20] [--reseed]

Prints p50 and p95 milliseconds and the SQL queries of each page (the same for every request, or flagged).
"""

from __future__ import annotations

import argparse
import gc
import re
import time

from _common import admin_dsn, configure, machine_note, median, pct, setup

configure("agentconsole_bench_pages")

TYPE_DEFAULTS = {
    "character varying": "''",
    "text": "''",
    "integer": "0",
    "bigint": "0",
    "smallint": "0",
    "double precision": "0",
    "numeric": "0",
    "boolean": "false",
    "jsonb": "'{}'::jsonb",
    "timestamp with time zone": "now()",
    "date": "current_date",
    "uuid": "gen_random_uuid()",
}


def _model_defaults(table: str) -> dict[str, str]:
    """The model's own defaults of its JSON columns (a list is not a dict), as SQL literals."""
    import json

    from django.apps import apps
    from django.db.models import JSONField

    for model in apps.get_models():
        if model._meta.db_table == table:
            return {
                f.column: "'" + json.dumps(f.get_default()).replace("'", "''") + "'::jsonb"
                for f in model._meta.concrete_fields
                if isinstance(f, JSONField) and f.has_default()
            }
    return {}


def _insert(cursor: object, table: str, values: dict[str, str], source: str) -> None:
    """INSERT ... SELECT with `values` (column -> SQL expression), every other required column at a neutral
    default, so columns added later do not break the seed."""
    cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s AND is_nullable = 'NO' "
        "AND column_default IS NULL AND is_identity = 'NO'",
        [table],
    )
    columns = dict(values)
    model_defaults = _model_defaults(table)
    for name, kind in cursor.fetchall():
        columns.setdefault(name, model_defaults.get(name) or TYPE_DEFAULTS.get(kind, "DEFAULT"))
    names = ", ".join(f'"{name}"' for name in columns)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {', '.join(columns.values())} {source}")


def _seed(tickets: int, steps_per_run: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from agent.models import Workflow
    from tickets.models import TenantLink

    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    admin.groups.add(Group.objects.get(name="admins"))
    for slug, phase in (("trials", "triage"), ("cache", "autonomous"), ("billing", "shadow"), ("locks", "triage")):
        Workflow.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "phase": phase, "runbook": "-",
                                                            "match_tags": [slug]})  # fmt: skip
    for n in range(200):
        TenantLink.objects.get_or_create(organization_id=f"bench-org-{n}", defaults={"tenant_id": f"tenant{n}"})
    started = time.perf_counter()
    with connection.cursor() as c:
        c.execute("CREATE TEMP TABLE bench_wf AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, phase "
                  "FROM agent_workflow WHERE slug IN ('trials', 'cache', 'billing', 'locks')")  # fmt: skip
        _insert(c, "tickets_ticket", {
            "source": "'zendesk'",
            "external_id": "'pg-' || g",
            "subject": "'Bench problem ' || g || CASE WHEN g % 7 = 0 THEN ' dashboard stale' ELSE ' login issue' END",
            "description": "'Numbers stopped updating this morning.'",
            "requester_id": "(g % 5000)::text",
            "requester_email": "'user' || (g % 5000) || '@example.com'",
            "organization_id": "'bench-org-' || (g % 200)",
            "tenant_link_id": "(SELECT id FROM tickets_tenantlink WHERE organization_id = 'bench-org-' || (g % 200))",
            "status": "(ARRAY['new','open','pending','solved'])[1 + g % 4]",
            "priority": "'normal'",
            "tags": "jsonb_build_array((ARRAY['trials','cache','billing','locks'])[1 + g % 4])",
            "raw_payload": "'{}'::jsonb",
            "created_at": f"now() - (({tickets} - g) * interval '1 minute') * 0.8",
            "updated_at": f"now() - (({tickets} - g) * interval '1 minute') * 0.8",
        }, f"FROM generate_series(1, {tickets}) g")  # fmt: skip
        c.execute("CREATE TEMP TABLE bench_t AS SELECT id, created_at, row_number() OVER (ORDER BY id) AS g "
                  "FROM tickets_ticket WHERE external_id LIKE 'pg-%'")  # fmt: skip
        _insert(c, "tickets_ticketcomment", {
            "ticket_id": "t.id", "external_id": "'c' || t.g", "body": "'Numbers stopped updating this morning.'",
            "public": "true", "author_kind": "'customer'", "author_id": "(t.g % 5000)::text",
            "attachments": "'[]'::jsonb", "delivery": "'sent'", "created_at": "t.created_at",
        }, "FROM bench_t t")  # fmt: skip
        statuses = "(ARRAY['completed','completed','escalated','awaiting_approval','completed','failed'])[1 + t.g % 6]"
        _insert(c, "agent_agentrun", {
            "ticket_id": "t.id", "workflow_id": "w.id", "phase": "w.phase", "trigger": "'ticket_created'",
            "matched_on": "'tags'", "status": statuses, "engine": "'bedrock:anthropic.claude'",
            "tokens_in": "12000 + t.g % 5000", "tokens_out": "900", "turns": "4", "active_ms": "20000",
            "created_at": "t.created_at", "updated_at": "t.created_at + interval '30 minutes'",
            "started_at": "t.created_at",
            "finished_at": f"CASE WHEN {statuses} IN ('completed','escalated','failed') "
                           "THEN t.created_at + interval '1 minute' * (5 + t.g % 300) END",
        }, "FROM bench_t t JOIN bench_wf w ON w.n = t.g % 4")  # fmt: skip
        c.execute("CREATE TEMP TABLE bench_r AS SELECT r.id, r.status, r.created_at, t.g FROM agent_agentrun r "
                  "JOIN bench_t t ON t.id = r.ticket_id")  # fmt: skip
        c.execute("ANALYZE bench_r")
        kinds = "(ARRAY['thought','action','observation'])[1 + s % 3]"
        _insert(c, "agent_step", {
            "run_id": "r.id", "index": "s", "turn": "s / 3", "kind": f"CASE WHEN s = {steps_per_run - 1} THEN 'final' "
            f"ELSE {kinds} END",
            "content": "CASE WHEN s % 3 = 0 THEN 'Looking at the tenant''s state, step ' || s ELSE '' END",
            "tool_name": "CASE WHEN s % 3 > 0 THEN 'run_sql' ELSE '' END",
            "tool_call_id": "CASE WHEN s % 3 > 0 THEN 'tu-' || (s / 3) ELSE '' END",
            "tool_input": "CASE WHEN s % 3 = 1 THEN '{\"query\": \"SELECT * FROM support.tenants\"}'::jsonb END",
            "tool_output": "CASE WHEN s % 3 = 2 THEN '{\"ok\": true, \"data\": {\"columns\": [\"id\"], "
                           "\"rows\": [[1]]}}'::jsonb END",
            "created_at": "r.created_at + s * interval '2 seconds'",
        }, f"FROM bench_r r CROSS JOIN generate_series(0, {steps_per_run - 1}) s")  # fmt: skip
        action_status = ("CASE WHEN r.status = 'awaiting_approval' THEN 'pending' WHEN r.g % 10 = 1 THEN 'rejected' "
                         "ELSE 'executed' END")  # fmt: skip
        _insert(c, "agent_proposedaction", {
            "run_id": "r.id", "tool": "'extend_trial'", "tool_call_id": "'tu-1'",
            "args": "jsonb_build_object('tenant_id', 'tenant' || (r.g % 200), 'days', 7)",
            "args_hash": "md5(r.id::text)",
            "original_args": "CASE WHEN r.g % 9 = 0 THEN jsonb_build_object('tenant_id', 'x', 'days', 14) END",
            "rationale": "'The trial ended early.'", "risk": "'write'", "status": action_status,
            "verification": f"CASE WHEN {action_status} = 'executed' THEN (CASE WHEN r.g % 50 = 0 THEN 'failed' "
                            "ELSE 'passed' END) ELSE 'not_required' END",
            "decided_by_id": f"CASE WHEN {action_status} <> 'pending' THEN {reviewer.pk} END",
            "decided_at": f"CASE WHEN {action_status} <> 'pending' THEN r.created_at + interval '9 minutes' END",
            "created_at": "r.created_at + interval '3 minutes'",
        }, "FROM bench_r r")  # fmt: skip
        _insert(c, "agent_rating", {
            "user_id": str(reviewer.pk), "action_id": "a.id", "value": "CASE WHEN a.id % 5 = 0 THEN -1 ELSE 1 END",
        }, "FROM agent_proposedaction a JOIN bench_r r ON r.id = a.run_id WHERE r.g % 4 = 0")  # fmt: skip
        # Ratings inserted by SQL, not by rating_set, which marks the run it rates (the "drafts to rate" index).
        c.execute("UPDATE agent_agentrun SET rated = true WHERE id IN (SELECT a.run_id FROM agent_rating x "
                  "JOIN agent_proposedaction a ON a.id = x.action_id)")  # fmt: skip
        for n, (verb, object_type, object_id) in enumerate((
            ("run.status_changed", "agent.agentrun", "r.id"),
            ("action.pending", "agent.proposedaction", "a.id"),
            ("run.status_changed", "agent.agentrun", "r.id"),
        )):  # fmt: skip
            _insert(c, "audit_auditevent", {
                "actor_kind": "'agent'", "verb": f"'{verb}'", "object_type": f"'{object_type}'",
                "object_id": f"{object_id}::text", "payload": "'{\"to\": \"running\"}'::jsonb",
                "payload_hash": "md5(r.id::text)", "created_at": f"r.created_at + interval '{n} minutes'",
            }, "FROM bench_r r JOIN agent_proposedaction a ON a.run_id = r.id")  # fmt: skip
        # One long transcript: the ticket page and its poll at 500 steps (a run still working, so the page polls).
        c.execute("SELECT id FROM bench_r ORDER BY id DESC LIMIT 1")
        long_run = c.fetchone()[0]
        c.execute("UPDATE agent_agentrun SET status = 'running', finished_at = NULL WHERE id = %s", [long_run])
        _insert(c, "agent_step", {
            "run_id": str(long_run), "index": f"{steps_per_run} + s", "turn": "2 + s / 3",
            "kind": "(ARRAY['thought','action','observation'])[1 + s % 3]",
            "content": "'More digging, step ' || s", "tool_name": "'run_sql'", "tool_call_id": "'tx-' || (s / 3)",
            "tool_output": "CASE WHEN s % 3 = 2 THEN '{\"ok\": true, \"data\": {}}'::jsonb END",
        }, "FROM generate_series(0, 489) s")  # fmt: skip
        c.execute("ANALYZE")
    from agent.services.rollups import rollups_rebuild

    rollups_rebuild()  # rows inserted by SQL, not by the services that keep the dashboard's rollups
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)


def _transcript_poll(url: str, client: object) -> str:
    """The URL the ticket page polls every 2 seconds while a run works (what it holds of each run's timeline);
    the page itself on a seed from before its long run was left working."""
    found = re.search(r'id="live" hx-get="([^"]+)"', client.get(url).content.decode())
    return found.group(1).replace("&amp;", "&") if found else url


def _pages(tickets: int, clients: dict) -> dict[str, tuple[str, str]]:
    """name -> (url, user); a name ending in "(htmx)" is requested as htmx."""
    from django.db.models import Count

    from agent.models import AgentRun, ProposedAction

    long_ticket = AgentRun.objects.annotate(n=Count("steps")).filter(n__gt=400).values_list("ticket_id", flat=True)
    long_ticket = long_ticket.first()
    some = AgentRun.objects.filter(ticket__external_id=f"pg-{tickets // 2}").values_list("ticket_id", flat=True)
    some = some.first()
    pending = ProposedAction.objects.filter(status="pending").order_by("-id").values_list("pk", flat=True).first()
    r, a = "reviewer", "admin"
    return {
        "anchor /healthz/": ("/healthz/", r),
        "queue /": ("/", r),
        "queue counts": ("/queue/counts/", r),
        "tickets first page": ("/tickets/", r),
        "tickets search": ("/tickets/?q=dashboard", r),
        "tickets tenant filter": ("/tickets/?q=tenant%3Atenant7", r),
        "tickets drafts to rate": ("/tickets/?view=needs_rating", r),
        "tickets evidence filter": ("/tickets/?workflow=trials&evidence=approved_unedited", r),
        "ticket (10 steps)": (f"/tickets/{some}/", r),
        "ticket (500 steps)": (f"/tickets/{long_ticket}/", r),
        "ticket comments poll": (f"/tickets/{long_ticket}/live/", r),
        "ticket poll, 500 steps (htmx)": (_transcript_poll(f"/tickets/{long_ticket}/", clients[r]), r),
        "action": (f"/actions/{pending}/", r),
        "workflows": ("/workflows/", a),
        "dashboard": ("/workflows/dashboard/", a),
        "knowledge gaps": ("/workflows/gaps/", a),
        "audit first page": ("/audit/", a),
        "audit oldest page": ("/audit/?oldest=1", a),
        "audit verb filter": ("/audit/?verb=action.pending", a),
        "API tickets": ("/api/tickets", r),
        "API runs": ("/api/runs", r),
        "API actions": ("/api/actions", r),
        "API workflows": ("/api/workflows", r),
        "API ticket": (f"/api/tickets/{long_ticket}", r),
        "API run (500 steps)": (f"/api/runs/{AgentRun.objects.get(ticket_id=long_ticket).pk}", r),
    }


def _drop_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(**admin_dsn(db), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--steps-per-run", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--reseed", action="store_true", help="empty the bench database and seed it again")
    parser.add_argument("--only", default="", help="a regular expression: measure only the pages it matches")
    args = parser.parse_args(argv)
    if args.reseed:
        _drop_database()
    setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tickets.models import Ticket

    call_command("collectstatic", interactive=False, verbosity=0)  # production settings serve the manifest's names
    if not Ticket.objects.filter(external_id="pg-1").exists():
        _seed(args.tickets, args.steps_per_run)
    with connection.cursor() as c:
        # As autovacuum leaves a live database (it is off on some test servers): the visibility map set, so index-only
        # scans read no table pages, and fresh statistics. Quick when nothing changed since the last run.
        c.execute("VACUUM (ANALYZE)")
    clients = {}
    for role in ("reviewer", "admin"):
        clients[role] = Client()
        clients[role].force_login(User.objects.get(username=f"bench-{role}"))
    pages = {k: v for k, v in _pages(args.tickets, clients).items() if re.search(args.only, k)}
    headers = {name: {"HX-Request": "true"} if name.endswith("(htmx)") else {} for name in pages}
    times: dict[str, list[float]] = {name: [] for name in pages}
    queries: dict[str, set[int]] = {name: set() for name in pages}
    gc.freeze()  # as agentconsole/wsgi.py does once the application is loaded, before its first request
    for name, (url, role) in pages.items():  # warm up, and check every page answers
        response = clients[role].get(url, headers=headers[name])
        assert response.status_code == 200, (name, url, response.status_code)
    for _ in range(args.requests):  # rounds: every page once per round, so load spikes hit them all alike
        for name, (url, role) in pages.items():
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                clients[role].get(url, headers=headers[name])
                times[name].append(1000 * (time.perf_counter() - started))
            queries[name].add(len(captured))
    print(f"Pages at {Ticket.objects.count()} tickets / {args.steps_per_run * args.tickets + 490} steps, "
          f"{args.requests} requests each in interleaved rounds. {machine_note()}")  # fmt: skip
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}")
    for name in pages:
        counts = "/".join(map(str, sorted(queries[name])))
        print(f"{name:32} {median(times[name]):8.1f} {pct(times[name], 0.95):8.1f} {counts:>8}")


if __name__ == "__main__":
    main()
