"""Several worker processes on one machine, started the way README says: `python -m agentconsole.worker`."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from agentconsole.celery import app
from tests.agentconsole.e2e.conftest import METRICS_TOKEN

pytestmark = pytest.mark.e2e


def _nodes(expected: int, timeout: float = 60) -> dict[str, dict]:
    """Each running worker's stats (its pid, its pool), once `expected` of them answer."""
    deadline = time.monotonic() + timeout
    while True:
        stats = app.control.inspect(timeout=1).stats() or {}
        if len(stats) >= expected or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_it_starts_worker_processes_of_threads_and_stops_them_warm(production) -> None:
    workers = production.start("workers", ["python", "-m", "agentconsole.worker"], WORKER_PROCESSES="3",
                               WORKER_CONCURRENCY="4", METRICS_WORKER_ADDRESS="127.0.0.1:0")  # fmt: skip

    stats = _nodes(3)
    assert sorted(name.split("@")[0] for name in stats) == ["worker1", "worker2", "worker3"], workers.text()
    assert {node["pool"]["max-concurrency"] for node in stats.values()} == {4}
    assert len({node["pid"] for node in stats.values()}) == 3
    queues = app.control.inspect(timeout=1).active_queues() or {}
    assert {name: [q["name"] for q in qs] for name, qs in queues.items()} == {name: ["agentconsole"] for name in stats}

    # One exporter for the set (the first worker's), its /healthz answering: the others were given no address.
    exporters = [line["metrics_address"] for line in workers.json_lines() if "metrics_address" in line]
    assert len(exporters) == 1, workers.text()
    assert httpx.get(f"http://{exporters[0]}/healthz").json() == {"status": "ok"}
    own = httpx.get(f"http://{exporters[0]}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert own.status_code == 200

    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=60) == 0
    assert all(_gone(node["pid"]) for node in stats.values())
    assert "Cold shutdown" not in workers.text()


def test_it_stops_the_set_when_one_worker_dies_so_the_supervisor_restarts_it(production) -> None:
    workers = production.start("workers", ["python", "-m", "agentconsole.worker"], WORKER_PROCESSES="2",
                               WORKER_CONCURRENCY="2")  # fmt: skip
    stats = _nodes(2)
    assert len(stats) == 2, workers.text()
    pids = {name.split("@")[0]: node["pid"] for name, node in stats.items()}

    os.kill(pids["worker2"], signal.SIGKILL)  # e.g. the out-of-memory killer

    assert workers.process.wait(timeout=60) == 128 + signal.SIGKILL
    assert _gone(pids["worker1"])
