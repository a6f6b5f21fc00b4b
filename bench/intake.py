"""Webhook intake against a bare one-INSERT Django view, both served by the same gunicorn (gunicorn.conf.py).

Starts gunicorn on the product (plus the anchor view, bench/_bench_urls.py) with a PostgreSQL database and a
Redis broker of its own, then sends signed `ticket.created` events, each a new ticket, over 64 keep-alive
connections, in rounds alternating with as many requests to the bare view. The load generator is an asyncio
client in this process with every request prepared beforehand (it shares the machine with the server: so does the
anchor's). The webhook stores the event and sends one task message; no worker runs during the rounds. Then a
duplicate storm: every event sent 16 times at once, then each of its messages applied twice in this process (as
a worker would, a redelivery included); exactly one stored event, event message, ticket, run and run message per
event must result.

Two measurements of latency, because they answer different questions:

- closed loop (saturation): each connection sends its next request as soon as the last is answered, so 64 are
  always in flight. It measures throughput; its latency is mostly queueing behind the other 63 (the mean is
  64 / throughput), so its p99 says how long a request waits when the server is flat out;
- open loop (a fixed offered rate): requests are due at fixed times (rate r: one every 1/r s) and go out over the
  same 64 connections; each one's latency runs from the time it was due, not from when a connection was free to
  send it, so time spent queued in the client is counted (no coordinated omission). Both sides get the same rate,
  a stated fraction of the bare view's saturation throughput measured in the closed-loop rounds just before.

    .venv/bin/python bench/intake.py [--rounds 5] [--requests 2000] [--connections 64]
        [--open-fractions 0.25,0.5] [--open-seconds 2] [--open-rounds 6]

BENCH_REDIS_URL (default redis://127.0.0.1:6379/4) is flushed; BENCH_GUNICORN_LOG=path keeps gunicorn's log.
Prints req/s, server CPU per request (gunicorn's processes), p50/p99 latency of both measurements, SQL statements
per request, and the duplicate-storm counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, SqlCounter, configure, machine_note, median, pct, setup

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
SECRET = "bench-webhook-secret"  # noqa: S105 - the bench's own server
configure(
    "agentconsole_bench_intake",
    CELERY_BROKER_URL=REDIS_URL,
    ZENDESK_WEBHOOK_SECRET=SECRET,
    AGENT_LLM_PROVIDER="offline",
)
PORT = int(os.environ.get("BENCH_PORT", "8765"))
WEBHOOK = "/api/webhooks/zendesk"
BARE = "/bench/bare-insert"


def _event(event_id: str, ticket_id: str) -> bytes:
    from django.utils import timezone

    now = timezone.now().isoformat()
    return json.dumps(
        {
            "id": event_id,
            "type": "zen:event-type:ticket.created",
            "account_id": 1,
            "time": now,
            "subject": f"zen:ticket:{ticket_id}",
            "detail": {
                "id": ticket_id,
                "organization_id": "360001",
                "requester_id": "3600011",
                "status": "NEW",
                "updated_at": now,
                "subject": "Dashboard shows stale data",
                "description": "Numbers stopped updating this morning.",
                "priority": "NORMAL",
                "tags": ["stale"],
            },
            "event": {},
        }
    ).encode()


def _request(path: str, body: bytes, signed: bool) -> bytes:
    from django.utils import timezone

    from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

    headers = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{PORT}", "Content-Type: application/json"]
    if signed:
        stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        headers += [
            f"{TIMESTAMP_HEADER}: {stamp}",
            f"{SIGNATURE_HEADER}: {compute_signature(secret=SECRET, timestamp=stamp, body=body)}",
        ]
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def _answer_read(reader: asyncio.StreamReader) -> bytes:
    """Read one answer (its head and its Content-Length of body); its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return head


async def _answer_count(
    head: bytes, statuses: dict[int, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Count the answer's status; the connection to go on with (a new one when the server closed this one)."""
    status = int(head.split(b" ", 2)[1])
    statuses[status] = statuses.get(status, 0) + 1
    if b"connection: close" in head.lower():
        writer.close()
        return await asyncio.open_connection("127.0.0.1", PORT)
    return reader, writer


async def _send_all(requests: list[bytes], connections: int) -> tuple[float, list[float], dict[int, int]]:
    """Send every request over `connections` keep-alive connections; wall seconds, latencies, status counts."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        try:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                writer.write(request)
                head = await _answer_read(reader)
                latencies.append(time.perf_counter() - started)
                reader, writer = await _answer_count(head, statuses, reader, writer)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, latencies, statuses


async def _send_at_rate(
    requests: list[bytes], connections: int, rate: float
) -> tuple[float, list[float], dict[int, int]]:
    """Open loop: request i is due at start + i / rate; `connections` keep-alive connections take the requests in
    order, each waiting for its request's due time if it is early. A request's latency is measured from its due
    time, so one that waited for a free connection counts that wait. Returns the seconds from the first due time
    to the last answer, the latencies and the status counts."""
    loop = asyncio.get_running_loop()
    opened = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", PORT) for _ in range(connections)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    start = loop.time() + 0.05

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index
        try:
            while next_index < len(requests):
                index = next_index
                next_index += 1
                due = start + index / rate
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(requests[index])
                head = await _answer_read(reader)
                latencies.append(loop.time() - due)
                reader, writer = await _answer_count(head, statuses, reader, writer)
        finally:
            writer.close()

    await asyncio.gather(*(worker(reader, writer) for reader, writer in opened))
    return loop.time() - start, latencies, statuses


def _queued(broker: object, queue: str) -> int:
    """Task messages waiting, at every priority (kombu's Redis transport keeps one list per priority step)."""
    return sum(broker.llen(queue if step == 0 else f"{queue}\x06\x16{step}") for step in (0, 3, 6, 9))


def _cpu_seconds(pid: int) -> float:
    """CPU of gunicorn's master and its workers (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _start_gunicorn() -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "_bench_settings",
        "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}",
        "HOST": "127.0.0.1",
        "PORT": str(PORT),
        "GUNICORN_CMD_ARGS": "--access-logfile /dev/null --max-requests 0",
    }
    # BENCH_GUNICORN_LOG=path keeps gunicorn's log (a 500's traceback, e.g. PostgreSQL out of connections).
    log_path = os.environ.get("BENCH_GUNICORN_LOG")
    log = Path(log_path).open("w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the server's lifetime
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "agentconsole.wsgi"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            asyncio.run(_send_all([f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n\r\n".encode()], 1))
            return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit("gunicorn did not start")


def _statements_per_request() -> dict[str, int]:
    """SQL statements one request of each kind sends, through the same views in this process."""
    from django.test import Client

    from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

    client = Client()
    found = {}
    for name, path, signed in (("bare INSERT view", BARE, False), ("webhook intake", WEBHOOK, True)):
        body = _event(f"bench-sql-{uuid.uuid4().hex}", str(random.randrange(10**9, 10**10)))
        headers = {}
        if signed:
            from django.utils import timezone

            stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
            headers = {
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: compute_signature(secret=SECRET, timestamp=stamp, body=body),
            }
        with SqlCounter().installed() as sql:
            response = client.post(path, body, content_type="application/json", headers=headers)
        assert response.status_code == 202, (path, response.status_code, response.content[:300])
        found[name] = sql.statements
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000, help="requests per side per round")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--open-fractions",
        default="0.25,0.5",
        help="open-loop offered rates, as fractions of the bare view's closed-loop req/s (comma-separated)",
    )
    parser.add_argument("--open-seconds", type=float, default=2.0, help="seconds per side per open-loop round")
    parser.add_argument("--open-rounds", type=int, default=6, help="interleaved open-loop rounds per side and rate")
    parser.add_argument("--storm-events", type=int, default=200)
    parser.add_argument("--storm-copies", type=int, default=16)
    args = parser.parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "_bench_settings"
    setup()
    import redis
    from _bench_urls import BARE_TABLE
    from django.conf import settings
    from django.db import connection

    from agent.models import AgentRun
    from agent.tasks import zendesk_event_process_task
    from tickets.models import Ticket, WebhookEvent

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {BARE_TABLE} (id bigserial PRIMARY KEY, body text NOT NULL)")
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    statements = _statements_per_request()
    server = _start_gunicorn()
    try:
        serial = int(time.time() * 1000) % 10**9 * 1000
        results: dict[str, dict[str, list[float]]] = {
            name: {"rps": [], "cpu_ms": [], "lat": []} for name in ("bare", "intake")
        }
        warm = [_request(BARE, b'{"warm": 1}', False)] * 200
        asyncio.run(_send_all(warm, args.connections))
        for _ in range(args.rounds):
            for name in ("bare", "intake"):
                batch = []
                for _ in range(args.requests):
                    serial += 1
                    body = _event(f"bench-{serial}", str(serial))
                    batch.append(_request(WEBHOOK if name == "intake" else BARE, body, name == "intake"))
                cpu = _cpu_seconds(server.pid)
                wall, latencies, statuses = asyncio.run(_send_all(batch, args.connections))
                cpu = _cpu_seconds(server.pid) - cpu
                assert set(statuses) == {202}, (name, statuses)
                results[name]["rps"].append(args.requests / wall)
                results[name]["cpu_ms"].append(1000 * cpu / args.requests)
                results[name]["lat"].extend(latencies)
        # Open loop, at fixed fractions of the bare view's saturation throughput just measured; both sides alike.
        bare_rps = median(results["bare"]["rps"])
        fractions = [float(f) for f in args.open_fractions.split(",") if f.strip()]
        opened: dict[float, dict[str, dict[str, list[float]]]] = {}
        for fraction in fractions:
            rate = fraction * bare_rps
            count = max(1, round(rate * args.open_seconds))
            opened[fraction] = {name: {"lat": [], "rate": [], "cpu_ms": [], "p99": []} for name in ("bare", "intake")}
            for _ in range(args.open_rounds):
                for name in ("bare", "intake"):
                    batch = []
                    for _ in range(count):
                        serial += 1
                        body = _event(f"bench-{serial}", str(serial))
                        batch.append(_request(WEBHOOK if name == "intake" else BARE, body, name == "intake"))
                    cpu = _cpu_seconds(server.pid)
                    wall, latencies, statuses = asyncio.run(_send_at_rate(batch, args.connections, rate))
                    cpu = _cpu_seconds(server.pid) - cpu
                    assert set(statuses) == {202}, (name, statuses)
                    opened[fraction][name]["lat"].extend(latencies)
                    opened[fraction][name]["p99"].append(pct(latencies, 0.99))
                    opened[fraction][name]["rate"].append(count / wall)
                    opened[fraction][name]["cpu_ms"].append(1000 * cpu / count)
        # The duplicate storm: each event's copies go out back to back, so they are in flight together.
        before = _queued(broker, settings.CELERY_TASK_DEFAULT_QUEUE)
        storm_ids = []
        batch = []
        for _ in range(args.storm_events):
            serial += 1
            storm_ids.append(str(serial))
            request = _request(WEBHOOK, _event(f"bench-storm-{serial}", str(serial)), True)
            batch += [request] * args.storm_copies
        _, _, storm_statuses = asyncio.run(_send_all(batch, args.connections))
        time.sleep(0.5)  # messages are sent on commit; the last answers may be a moment ahead of them
        messages = _queued(broker, settings.CELERY_TASK_DEFAULT_QUEUE) - before
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    # Be the worker for the storm's messages, each delivered twice (a redelivery): one ticket and run per event,
    # and one message for each run's first turn.
    waiting = broker.keys(f"{settings.CELERY_TASK_DEFAULT_QUEUE}*")
    if waiting:
        broker.delete(*waiting)
    storm_events = list(
        WebhookEvent.objects.filter(event_id__in=[f"bench-storm-{i}" for i in storm_ids]).values_list("pk", flat=True)
    )
    for event_pk in storm_events:
        for _ in range(2):
            zendesk_event_process_task.apply(args=(event_pk,), throw=True)
    tickets = Ticket.objects.filter(external_id__in=storm_ids)
    storm = {
        "stored events": len(storm_events),
        "event messages": messages,
        "tickets": tickets.count(),
        "runs": AgentRun.objects.filter(ticket__in=tickets).count(),
        "run messages": _queued(broker, settings.CELERY_TASK_DEFAULT_QUEUE),
    }
    broker.flushdb()

    print(f"Webhook intake vs a bare one-INSERT view, same gunicorn (gunicorn.conf.py: "
          f"{os.environ.get('WEB_CONCURRENCY', '2')} workers x {os.environ.get('WEB_THREADS', '4')} threads), "
          f"{args.connections} connections")  # fmt: skip
    print(f"{args.rounds} interleaved rounds of {args.requests} requests per side; medians. {machine_note()}")
    print(f"closed loop (saturation: {args.connections} requests always in flight, the mean latency is "
          f"{args.connections} / req/s)")  # fmt: skip
    print(f"{'':18} {'req/s':>8} {'CPU ms/req':>11} {'p50 ms':>8} {'p99 ms':>8} {'SQL/req':>8}")
    for name, label, sql in (
        ("bare", "bare INSERT view", "bare INSERT view"),
        ("intake", "webhook intake", "webhook intake"),
    ):
        r = results[name]
        print(
            f"{label:18} {median(r['rps']):8.0f} {median(r['cpu_ms']):11.2f} {1000 * pct(r['lat'], 0.5):8.1f} "
            f"{1000 * pct(r['lat'], 0.99):8.1f} {statements[sql]:8d}"
        )
    print(f"ratio intake / bare: {median(results['intake']['rps']) / median(results['bare']['rps']):.2f}x req/s")
    print(
        f"open loop: requests due at a fixed rate over {args.connections} connections, latency from the due time "
        f"(queueing counted); {args.open_rounds} interleaved rounds of {args.open_seconds:g} s per side; p99 of all "
        "the requests, and the median of the rounds' p99 (a burst of other work on the machine spoils one round)"
    )
    print(
        f"{'':18} {'offered':>8} {'answered':>9} {'CPU ms/req':>11} {'p50 ms':>8} {'p99 ms':>8} {'round p99':>10}"
        f" {'max ms':>8}  p99 < 50 ms"
    )
    for fraction, sides in opened.items():
        for name, label in (("bare", "bare INSERT view"), ("intake", "webhook intake")):
            r = sides[name]
            p99 = 1000 * pct(r["lat"], 0.99)
            print(
                f"{label:18} {fraction * bare_rps:8.0f} {median(r['rate']):9.0f} {median(r['cpu_ms']):11.2f} "
                f"{1000 * pct(r['lat'], 0.5):8.1f} {p99:8.1f} {1000 * median(r['p99']):10.1f} "
                f"{1000 * max(r['lat']):8.1f}  "
                f"{'yes' if p99 < 50 else 'no'} ({fraction:g}x the bare view's saturation req/s)"
            )
    print(f"duplicate storm: {args.storm_events} events x {args.storm_copies} copies, answers {storm_statuses}; "
          + ", ".join(f"{v} {k}" for k, v in storm.items())
          + (" — exactly one each" if set(storm.values()) == {args.storm_events} else " — NOT one each"))  # fmt: skip


if __name__ == "__main__":
    main()
