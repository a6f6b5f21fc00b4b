"""End to end: the real webhook, a real Celery worker process on the real Redis broker, the real PostgreSQL
database, and the company (tests/conftest.py) over HTTP on pytest-django's live server. Only the model is
replaced: the offline engine is the product's own deterministic runbook follower."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from agent.models import AgentRun
from console.demo import demo_requester_id
from tests.support import WEBHOOK_URL, commit_callbacks_run, signed_headers, webhook_events_process, zendesk_event
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[3]
FINAL = {"completed", "escalated", "failed"}


@dataclass
class Worker:
    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, **extra_env: str) -> subprocess.Popen:
        log = (self.log_dir / f"worker-{len(self.processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "agentconsole", "worker", "--pool", "threads",
             "--concurrency", "4", "--without-mingle", "--without-gossip", "--without-heartbeat",
             "--loglevel", "INFO", "--hostname", f"e2e{len(self.processes)}@%h"],
            cwd=ROOT, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        log_path = Path(log.name)
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        return process

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no chance to hand messages back."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("worker-*.log")))


@pytest.fixture
def worker(company, broker, tmp_path) -> Iterator[Worker]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "agentconsole.settings_test",
        # The worker must use the test database this test process created, not the configured name.
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.CELERY_BROKER_URL,
        **company.env,
        "AGENT_LLM_PROVIDER": "offline",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    handle = Worker(env=env, log_dir=tmp_path)
    yield handle
    handle.stop()


def deliver(
    ticket_id: int, organization_id: str, subject: str, description: str, tags: list[str], *, no_worker: bool = False
) -> Ticket:
    """A signed ticket.created event through the real webhook; the worker applies it (the ticket and its run) right
    after. The requester is the organization's demo requester (the local helpdesk's directory gives their identity).
    `no_worker`: no worker is up yet; this process takes the event's message and applies it as a worker would, so
    the ticket and its queued run exist and the run's first message waits for the worker."""
    body = json.dumps(
        zendesk_event(
            event_id=f"e2e-{ticket_id}",
            ticket_id=ticket_id,
            organization_id=organization_id,
            subject=subject,
            description=description,
            tags=tags,
            status="NEW",
            requester_id=demo_requester_id(organization_id),
        )
    ).encode()
    response = Client().post(WEBHOOK_URL, data=body, content_type="application/json", headers=signed_headers(body))
    assert response.status_code == 202, response.content
    if no_worker:
        commit_callbacks_run()  # in a test's transaction the request's commit is only pretended: send its message
        assert webhook_events_process() == ["run started"]
    return wait_for_ticket(str(ticket_id))


def wait_for_ticket(external_id: str, timeout: float = 60) -> Ticket:
    """The ticket a worker creates from a delivered event."""
    deadline = time.monotonic() + timeout
    while (ticket := Ticket.objects.filter(external_id=external_id).first()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker applied the event of ticket {external_id} within {timeout} s")
        time.sleep(0.1)
    return ticket


def wait_for_run(ticket: Ticket, statuses: set[str], worker: Worker, timeout: float = 60) -> AgentRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = AgentRun.objects.filter(ticket=ticket).first()
        if run is not None and run.status in statuses:
            return run
        time.sleep(0.2)
    run = AgentRun.objects.filter(ticket=ticket).first()
    raise AssertionError(
        f"run did not reach {statuses}: {run and run.status}; steps: "
        f"{list(run.steps.values_list('kind', 'tool_name', 'tool_output')) if run else None}\n{worker.logs()[-4000:]}"
    )
