"""The production processes, started the way README's "Production" section and docs/deploy-aws.md say, outside a
container: gunicorn with gunicorn.conf.py, Celery workers, against the real PostgreSQL and Redis (or moto's SQS).
Only what is outside our reach is a stand-in: Bedrock's Converse API and an OTLP collector, as local HTTP servers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings
from django.db import connection
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.http_standin import StandIn

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
METRICS_TOKEN = "e2e-metrics-token"
# The commands compose.yaml (and so the Dockerfile's image) runs: the test runs the same ones, as processes.
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def compose_command(service: str, **options: str) -> list[str]:
    """The service's command from compose.yaml, with some option values replaced (e.g. a smaller concurrency)."""
    command = list(COMPOSE[service]["command"])
    for option, value in options.items():
        command[command.index(f"--{option}") + 1] = value
    return command


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {pattern!r}:\n{self.text()[-6000:]}")
            time.sleep(0.1)

    def json_lines(self) -> list[dict]:
        lines = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


@dataclass
class Services:
    env: dict[str, str]
    log_dir: Path
    started: list[Service] = field(default_factory=list)

    def run(self, *argv: str, **extra_env: str) -> str:
        done = subprocess.run(
            [str(BIN / "python"), *argv],
            cwd=ROOT,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def start(self, name: str, argv: list[str], **extra_env: str) -> Service:
        log = self.log_dir / f"{name}.log"
        command = [str(BIN / argv[0]), *argv[1:]]
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **extra_env}, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        service = Service(name, process, log)
        self.started.append(service)
        return service

    def web(self) -> tuple[Service, str]:
        """gunicorn as documented, on a free port; returns it and its base URL."""
        web = self.start("web", compose_command("web"), HOST="127.0.0.1", PORT="0")
        port = web.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        web.wait_for(r"Booting worker with pid")
        return web, f"http://127.0.0.1:{port}"

    def worker(self, name: str, *extra: str, **extra_env: str) -> Service:
        command = [*compose_command("worker", concurrency="4"), "--hostname", f"{name}@%h", *extra]
        worker = self.start(name, command, **extra_env)
        worker.wait_for(r" ready\.")
        return worker

    def scheduler(self) -> Service:
        scheduler = self.start("scheduler", compose_command("scheduler", schedule=str(self.log_dir / "beat")))
        scheduler.wait_for(r"beat: Starting")
        return scheduler

    def stop(self) -> None:
        for service in self.started:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.started:
            try:
                service.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(timeout=5)


@pytest.fixture
def production(transactional_db, broker, tmp_path) -> Iterator[Services]:
    """Production settings (agentconsole.settings, DEBUG off, HTTPS behind a TLS proxy) on the test database."""
    db = connection.settings_dict
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_", "OTEL_", "AWS_"))}
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "agentconsole.settings",
        # The support views' tenant binding was installed with the test settings' key (see docs/sql-guard.md).
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_BEHIND_TLS_PROXY": "true",
        "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SUPPORT_SQL_ROLE": settings.SUPPORT_SQL_ROLE,
        "ZENDESK_WEBHOOK_SECRET": settings.ZENDESK_WEBHOOK_SECRET,
        "ADMIN_API_TOKEN": settings.ADMIN_API_TOKEN,
        "METRICS_TOKEN": METRICS_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "WEB_CONCURRENCY": "2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PYTHONUNBUFFERED": "1",
    }
    (tmp_path / "prometheus").mkdir()
    services = Services(env=env, log_dir=tmp_path)
    yield services
    services.stop()


# What the TLS-terminating load balancer adds in front of gunicorn.
BEHIND_TLS = {"X-Forwarded-Proto": "https"}


def wait_ready(base_url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base_url}/readyz", timeout=5)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def exported_spans(otlp: StandIn) -> list[dict]:
    """Every span the collector stand-in received, decoded from OTLP/HTTP protobuf, with its attributes flat."""
    spans = []
    for request in otlp.requests:
        assert request.path == "/v1/traces", request.path
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "status": span.status.code,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "resource": resource,
                        }
                    )
    return spans


def _value(value: object) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include these, from the text exposition format."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            total += float(value)
            found = True
    assert found, f"no sample of {name} with {labels}"
    return total
