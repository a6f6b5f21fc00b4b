"""Throughput and time to resolution with a model that takes 1 s a call: real Celery on Redis, PostgreSQL.

A local Converse stand-in (bench/_converse_standin.py, through AWS_ENDPOINT_URL_BEDROCK_RUNTIME, so botocore and
langchain-aws run as in production) answers every call after --latency seconds; each ticket takes --calls read
tool calls (search_runbooks) and a final answer, so its model latency sums to (calls + 1) x latency. The workers
README recommends (`python -m agentconsole.worker`: --processes processes of --concurrency threads) work the
tickets. Two phases: every ticket at once (throughput), then the same number kept --in-flight at a time (time to
resolution at that concurrency).

    .venv/bin/python bench/throughput.py [--tickets 300] [--latency 1] [--in-flight 50] [--processes 2]
                                         [--concurrency 40] [--server-side-binding on|off]
                                         [--worker "more celery worker options"]

BENCH_REDIS_URL (default redis://127.0.0.1:6379/4) is flushed. Prints tickets/h, p50/p90 time to resolution
against the model's latency, runs failed or stuck, CPU per model call of the workers, of PostgreSQL's backends on
the bench database and of this process (the stand-in and the driver), peak and distinct PostgreSQL backends, and
the workers' "Connection pool is full" warnings.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

from _common import ROOT, configure, machine_note, median, pct, setup

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
configure(
    "agentconsole_bench_throughput",
    CELERY_BROKER_URL=REDIS_URL,
    AGENT_LLM_PROVIDER="bedrock",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - signs requests to the local stand-in
    AGENT_ROLE_ARN="",
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _seed() -> tuple[object, object]:
    from agent.models import AgentRun, Runbook, Workflow
    from tickets.models import TenantLink, Ticket

    AgentRun.objects.filter(ticket__external_id__startswith="bench-tp-").delete()
    Ticket.objects.filter(external_id__startswith="bench-tp-").delete()
    Runbook.objects.get_or_create(
        slug="bench-cache", defaults={"title": "Stale cache", "body": "Reset the cache.", "tags": ["cache"]}
    )
    workflow, _ = Workflow.objects.update_or_create(
        slug="bench-throughput",
        defaults={"name": "Bench throughput", "phase": Workflow.Phase.TRIAGE, "runbook": "Search the runbooks.",
                  "match_tags": ["bench-throughput"]},
    )  # fmt: skip
    link, _ = TenantLink.objects.get_or_create(organization_id="bench-org", defaults={"tenant_id": "acme"})
    return workflow, link


def _start(n: int, serial: list[int], link: object) -> list[int]:
    from agent.services.intake import agent_run_create_for_new_ticket
    from tickets.models import Ticket

    runs = []
    for _ in range(n):
        serial[0] += 1
        ticket = Ticket.objects.create(
            external_id=f"bench-tp-{serial[0]}", subject="Dashboard shows stale data", tags=["bench-throughput"],
            tenant_link=link, organization_id="bench-org",
        )  # fmt: skip
        run = agent_run_create_for_new_ticket(ticket=ticket)
        assert run is not None
        runs.append(run.pk)
    return runs


class Backends:
    """PostgreSQL backends on the bench database, sampled: the peak at once, how many distinct ones opened, and the
    CPU each used (its latest reading; the workers keep theirs, so few end between samples)."""

    def __init__(self) -> None:
        self.peak = 0
        self.seen: set[tuple[int, object]] = set()
        self.cpu: dict[int, float] = {}

    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def sample(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                "pg_backend_pid()"
            )
            rows = cursor.fetchall()
        self.peak = max(self.peak, len(rows))
        self.seen.update(rows)
        for pid, _ in rows:
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))


def _wait(run_ids: list[int], backends: Backends, timeout: float, more: object = None) -> None:
    from agent.lifecycle import RUN_FINAL
    from agent.models import AgentRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backends.sample()
        if more is not None:
            more()
        if not AgentRun.objects.filter(pk__in=run_ids).exclude(status__in=RUN_FINAL).exists():
            return
        time.sleep(0.25)


class Cpu:
    """CPU seconds of the workers (every process the launcher started), of PostgreSQL's backends on the bench
    database, and of this process (the Converse stand-in and the driver creating tickets and polling)."""

    def __init__(self, launcher: int, backends: Backends) -> None:
        self.launcher, self.backends = launcher, backends
        self.workers: set[int] = set()
        self.worker_cpu: dict[int, float] = {}

    def read(self) -> dict[str, float]:
        self.workers.update(children_of(self.launcher))
        for pid in self.workers:
            self.worker_cpu[pid] = max(self.worker_cpu.get(pid, 0.0), cpu_seconds(pid))
        return {
            "workers": sum(self.worker_cpu.values()) + cpu_seconds(self.launcher),
            "postgres": self.backends.cpu_total(),
            "bench": time.process_time(),
        }


def _phase(name: str, runs: list[int], calls: int, latency: float, cpu: dict[str, float]) -> dict[str, float]:
    from agent.models import AgentRun

    rows = list(AgentRun.objects.filter(pk__in=runs).values_list("status", "created_at", "finished_at", "turns"))
    done = [r for r in rows if r[0] == AgentRun.Status.COMPLETED and r[3] == calls + 1]
    ttr = [(r[2] - r[1]).total_seconds() for r in done]
    first = min(r[1] for r in rows)
    last = max((r[2] for r in rows if r[2]), default=first)
    span = (last - first).total_seconds() or 1
    floor = (calls + 1) * latency
    model_calls = sum(r[3] for r in rows) or 1
    return {
        "name": name,
        "tickets": len(rows),
        "per_hour": len(done) / span * 3600,
        "p50": median(ttr) if ttr else float("nan"),
        "p90": pct(ttr, 0.9) if ttr else float("nan"),
        "floor": floor,
        "failed": sum(1 for r in rows if r[0] in ("failed", "escalated")),
        "stuck": sum(1 for r in rows if r[2] is None),
        **{f"cpu_{k}": v / model_calls * 1000 for k, v in cpu.items()},
        "cores": sum(cpu.values()) / span,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--calls", type=int, default=5, help="tool calls per ticket (model calls = calls + 1)")
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="worker processes (WORKER_PROCESSES)")
    parser.add_argument("--concurrency", type=int, default=40, help="threads per worker (WORKER_CONCURRENCY)")
    parser.add_argument("--worker", default="", help="more `celery worker` options")
    parser.add_argument("--server-side-binding", choices=["on", "off"], default="on",
                        help="the workers' DATABASE_SERVER_SIDE_BINDING (README recommends it on)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    setup()
    import redis
    from _converse_standin import ConverseStandIn

    standin = ConverseStandIn(latency=args.latency, calls=args.calls, tool="search_runbooks",
                              tool_args={"query": "stale cache"})  # fmt: skip
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = standin.url
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    _, link = _seed()
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "agentconsole.worker", "--loglevel", "WARNING",
               *shlex.split(args.worker)]  # fmt: skip
    env = {**os.environ, "LOG_FORMAT": "plain", "WORKER_PROCESSES": str(args.processes),
           "WORKER_CONCURRENCY": str(args.concurrency),
           "DATABASE_SERVER_SIDE_BINDING": "true" if args.server_side_binding == "on" else "false"}  # fmt: skip
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    backends = Backends()
    cpu = Cpu(worker.pid, backends)
    serial = [int(time.time()) % 10**6 * 1000]
    results = []
    try:
        from agentconsole.celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5)) < args.processes and time.monotonic() < deadline:
            time.sleep(0.5)
        backends.sample()
        before = cpu.read()
        runs = _start(args.tickets, serial, link)
        _wait(runs, backends, args.timeout)
        after = cpu.read()
        results.append(_phase(f"{args.tickets} at once", runs, args.calls, args.latency,
                              {k: after[k] - before[k] for k in after}))  # fmt: skip
        started: list[int] = []

        def top_up() -> None:
            from agent.lifecycle import RUN_FINAL
            from agent.models import AgentRun

            open_now = AgentRun.objects.filter(pk__in=started).exclude(status__in=RUN_FINAL).count()
            room = min(args.in_flight - open_now, args.tickets - len(started))
            if room > 0:
                started.extend(_start(room, serial, link))

        before = cpu.read()
        top_up()
        while len(started) < args.tickets:
            _wait(started, backends, 0.5, more=top_up)
        _wait(started, backends, args.timeout)
        after = cpu.read()
        results.append(_phase(f"{args.in_flight} in flight", started, args.calls, args.latency,
                              {k: after[k] - before[k] for k in after}))  # fmt: skip
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=90)
        except subprocess.TimeoutExpired:
            worker.kill()
        standin.close()
        broker.flushdb()
    log.seek(0)
    text = log.read()
    print(f"Throughput: {args.tickets} tickets, {args.calls + 1} model calls each at {args.latency:g} s "
          f"(Converse stand-in), {args.processes} worker processes x {args.concurrency} threads "
          f"(python -m agentconsole.worker {args.worker}) on Redis, PostgreSQL (server-side binding "
          f"{args.server_side_binding}). {machine_note()}")  # fmt: skip
    print(f"{'phase':16} {'tickets/h':>10} {'p50 TTR s':>10} {'p90 TTR s':>10} {'model s':>8} {'p50/model':>10} "
          f"{'failed':>7} {'stuck':>6} | CPU ms per model call: {'workers':>8} {'postgres':>9} {'bench':>6} "
          f"{'cores':>6}")  # fmt: skip
    for r in results:
        print(f"{r['name']:16} {r['per_hour']:10.0f} {r['p50']:10.1f} {r['p90']:10.1f} {r['floor']:8.1f} "
              f"{r['p50'] / r['floor']:10.2f} {r['failed']:7d} {r['stuck']:6d} | {'':22} {r['cpu_workers']:8.1f} "
              f"{r['cpu_postgres']:9.1f} {r['cpu_bench']:6.1f} {r['cores']:6.2f}")  # fmt: skip
    print(f"PostgreSQL backends on the bench database: peak {backends.peak} at once, {len(backends.seen)} distinct "
          f"seen (sampled every 0.25 s); model calls {standin.bill.requests}")  # fmt: skip
    print(
        f'worker log: {text.count("Connection pool is full")} "Connection pool is full", '
        f"{text.count('ERROR')} ERROR lines ({log.name})"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
