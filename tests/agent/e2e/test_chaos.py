"""Chaos: real Celery worker processes killed with SIGKILL over and over while tickets run, the broker and the
database each cut once under them through TCP proxies this test starts, a real celery beat running the reconciler.
It ends only when every run is final, and then checks what must hold whatever happened: at most one write in the
company's systems per intent (proposed action), and at most one public reply per ticket.

Bounded: about two minutes on two cores. Select it alone with `-m chaos`; `make test` runs it with the rest.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.db.models import Count, Sum

from agent.models import AgentRun, ProposedAction
from sandbox.models import CacheReset, FaultSwitch, IdempotencyRecord
from tests.agent.e2e.conftest import ROOT, Worker, deliver
from tests.tcp_proxy import TcpProxy
from tickets.models import TicketComment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.chaos]

TICKETS = 30
KILLS = 10
DRAIN_SECONDS = 120
OUTAGE_SECONDS = 10  # each of the broker and the database is cut this long, once
FINAL = {"completed", "escalated", "failed"}
ORGANIZATIONS = ["360001", "360002", "360003", "360004", "360005", "360006"]


def _ticket(number: int) -> tuple[int, str, str, str, list[str]]:
    organization = ORGANIZATIONS[number % len(ORGANIZATIONS)]
    if number % 3 == 2:  # a shadow workflow: dry runs and one private note, no writes
        return 8000 + number, organization, "Terraform runs fail", "Error acquiring the state lock", ["config_issue"]
    return 8000 + number, organization, "Dashboard shows stale data", "Numbers stopped updating.", ["stale_cache"]


class Beat:
    """celery beat, as production runs it: its own process, sending the reconciler every couple of seconds."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / "beat.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "agentconsole", "beat", "--loglevel", "INFO",
             "--schedule", str(log_dir / "beat-schedule")],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _cache_resets() -> Counter:
    return Counter(dict(CacheReset.objects.values_list("tenant_id").annotate(n=Count("id"))))


def _writes_per_intent(before: Counter) -> tuple[Counter, Counter]:
    """Cache resets the company performed per tenant during the test, and reset intents (proposed actions)."""
    effects = _cache_resets() - before
    intents = Counter(
        dict(
            ProposedAction.objects.filter(tool="reset_tenant_cache")
            .exclude(status=ProposedAction.Status.DRY_RUN)
            .values_list("run__ticket__tenant_link__tenant_id")
            .annotate(n=Count("id"))
        )
    )
    return effects, intents


def test_it_finishes_every_run_through_worker_kills_and_outages(company, live_server, broker, tmp_path, settings):
    settings.SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = 0  # many tickets per tenant: no rate limit in the way
    company(stale_cache="autonomous")
    FaultSwitch.objects.filter(pk=1).update(latency_ms=150)  # the company's API is slowish: kills land mid-run
    resets_before = _cache_resets()  # the seed's history

    db = connection.settings_dict
    broker_url = urlsplit(settings.CELERY_BROKER_URL)
    database_proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    broker_proxy = TcpProxy(broker_url.hostname or "127.0.0.1", broker_url.port or 6379)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentconsole.settings_test",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        # Workers and beat reach PostgreSQL and Redis only through the proxies; this process reaches them directly.
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{database_proxy.port}/{db['NAME']}",
        "TEST_REDIS_URL": f"redis://127.0.0.1:{broker_proxy.port}{broker_url.path}",
        **company.env,
        "AGENT_LLM_PROVIDER": "offline",
        # Recovery timings scaled down so the test stays short; production defaults are minutes.
        "AGENT_LEASE_SECONDS": "5",
        "AGENT_RUN_STALE_SECONDS": "5",
        "AGENT_RECONCILE_INTERVAL_SECONDS": "2",
        "AGENT_RUN_MAX_RECOVERIES": "10",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "30",
    }
    worker = Worker(env=env, log_dir=tmp_path)
    beat = Beat(env, tmp_path)
    rng = random.Random(9)
    delivered = []
    survived = {}
    try:
        process = worker.start()
        kills = 0
        for cycle in range(KILLS):
            for _ in range(TICKETS // KILLS):
                delivered.append(deliver(*_ticket(len(delivered))))
            time.sleep(rng.uniform(1.0, 2.5))
            if cycle == 3:
                with broker_proxy.down():
                    time.sleep(OUTAGE_SECONDS)
                time.sleep(2)
                survived["broker cut"] = process.poll() is None
            if cycle == 6:
                with database_proxy.down():
                    time.sleep(OUTAGE_SECONDS)
                time.sleep(2)
                survived["database cut"] = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            kills += 1
            process = worker.start()

        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            statuses = Counter(AgentRun.objects.values_list("status", flat=True))
            if sum(statuses.values()) == TICKETS and set(statuses) <= FINAL:
                break
            time.sleep(1)
        statuses = Counter(AgentRun.objects.values_list("status", flat=True))
        survived["the whole test"] = process.poll() is None
    finally:
        beat.stop()
        worker.stop()
        database_proxy.close()
        broker_proxy.close()

    logs = worker.logs()
    report = (
        f"runs {dict(statuses)}; kills {kills}; recoveries "
        f"{AgentRun.objects.aggregate(n=Sum('recoveries'))['n']}; worker survived {survived}"
    )
    print(report)  # the figures the README quotes (shown with -s)
    assert kills >= 10
    assert len(delivered) >= 30
    assert sum(statuses.values()) == TICKETS and set(statuses) <= FINAL, f"{report}\n{logs[-6000:]}"
    assert all(survived.values()), f"{report}\n{logs[-6000:]}"
    assert "Unrecoverable error" not in logs
    assert statuses["completed"] >= TICKETS // 3, report  # the chaos did not just escalate everything

    effects, intents = _writes_per_intent(resets_before)
    assert sum(effects.values()) >= 1, "no write happened: the test proved nothing about duplicates"
    for tenant, performed in effects.items():
        assert performed <= intents[tenant], (tenant, performed, intents[tenant])
    # Each write the company performed was asked for under exactly one idempotency key.
    assert IdempotencyRecord.objects.filter(path__contains="cache", status_code__lt=300).count() == sum(
        effects.values()
    )
    replies = Counter(
        TicketComment.objects.filter(public=True, author_kind=TicketComment.AuthorKind.AGENT).values_list(
            "ticket_id", flat=True
        )
    )
    assert max(replies.values(), default=0) <= 1, replies
