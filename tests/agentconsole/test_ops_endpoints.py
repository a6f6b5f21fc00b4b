"""/healthz, /readyz and /metrics through the test client, on the real database and Redis broker."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from agentconsole import health
from agentconsole.logs import JsonFormatter, PlainFormatter, log_context
from agentconsole.models import WorkerHeartbeat
from tests.factories import ProposedActionFactory, WorkflowFactory
from tests.support import zendesk_event
from tickets.models import WebhookEvent

pytestmark = pytest.mark.django_db

TOKEN = "test-metrics-token"


@pytest.fixture(autouse=True)
def fresh_readiness(broker):
    health.readiness_cache_clear()
    yield
    health.readiness_cache_clear()


def _beat(age_seconds: float = 0, queues: tuple[str, ...] = ("agentconsole",), hostname: str = "w1@host") -> None:
    beat = health.Heartbeat(hostname=hostname)
    beat.beat(list(queues))
    WorkerHeartbeat.objects.filter(hostname=hostname).update(seen_at=timezone.now() - timedelta(seconds=age_seconds))


def test_it_answers_healthz_to_anyone_on_any_host() -> None:
    response = Client(HTTP_HOST="10.0.3.17:8000").get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Length"] == str(len(response.content))


def test_it_refuses_other_methods(anonymous) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        response = anonymous.post(path)
        assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
        assert response["Content-Length"] == str(len(response.content))


def test_it_is_unready_without_a_recent_heartbeat_of_a_worker_on_the_queue(anonymous) -> None:
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "migrations": "ok", "worker": "no recent heartbeat", "broker": "ok"},
    }
    _beat(age_seconds=120)  # too old
    _beat(queues=("another-queue",), hostname="w2@host")  # recent, but not taking our tasks
    health.readiness_cache_clear()
    assert anonymous.get("/readyz").json()["checks"]["worker"] == "no recent heartbeat"


def test_it_is_ready_with_a_recent_heartbeat_even_by_ip_over_plain_http() -> None:
    _beat(age_seconds=5)
    response = Client(HTTP_HOST="10.0.3.17:8000").get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ok"


def test_it_says_unreachable_without_details_when_the_broker_is_down(anonymous, settings) -> None:
    from agentconsole.celery import app

    _beat()
    app.conf.broker_read_url = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        response = anonymous.get("/readyz")
    finally:
        app.conf.broker_read_url = None
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unreachable"
    assert "127.0.0.1" not in response.content.decode()


def test_it_caches_the_answer_briefly() -> None:
    first = health.readiness()
    _beat()
    assert health.readiness() is first  # within the cache window: no new queries


def test_it_removes_a_worker_heartbeat_on_clean_shutdown() -> None:
    beat = health.Heartbeat(hostname="w9@host")
    beat.beat(["agentconsole"])
    assert beat.alive() and WorkerHeartbeat.objects.filter(hostname="w9@host").exists()
    beat.forget()
    assert not WorkerHeartbeat.objects.filter(hostname="w9@host").exists()


def test_it_serves_metrics_only_with_the_token(anonymous, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert anonymous.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_it_reports_pending_approvals_and_the_oldest_ones_age(anonymous, settings) -> None:
    settings.METRICS_TOKEN = TOKEN
    workflow = WorkflowFactory(slug="trial-extension")
    old = ProposedActionFactory(run__workflow=workflow, status="pending")
    ProposedActionFactory(run__workflow=workflow, status="pending")
    ProposedActionFactory(run__workflow=workflow, status="executed")
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    text = anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    assert 'agentconsole_approvals_pending{workflow="trial-extension"} 2.0' in text
    age = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('agentconsole_approval_oldest_pending_age_seconds{workflow="trial-extension"}')
    )
    assert 7100 < age < 7300
    assert 'agentconsole_queue_depth{queue="agentconsole"} 0.0' in text
    assert 'agentconsole_state_collector_up{collector="agent"} 1.0' in text


def _record(message: str = "hello", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("agent.loop", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_it_logs_json_with_the_bound_ids_and_extras() -> None:
    with log_context(run_id=7, ticket_id=3), log_context(task_id="t-1"):
        line = json.loads(JsonFormatter().format(_record(outcome="done")))
    assert {k: line[k] for k in ("level", "logger", "message", "run_id", "ticket_id", "task_id", "outcome")} == {
        "level": "INFO",
        "logger": "agent.loop",
        "message": "hello",
        "run_id": 7,
        "ticket_id": 3,
        "task_id": "t-1",
        "outcome": "done",
    }
    assert "run_id" not in json.loads(JsonFormatter().format(_record()))  # unbound after the block


def test_it_logs_plain_lines_with_the_ids_for_people() -> None:
    with log_context(run_id=7):
        assert PlainFormatter().format(_record()).endswith("INFO agent.loop hello [run_id=7]")


def test_it_gives_each_request_an_id(anonymous) -> None:
    response = anonymous.get("/accounts/login/", headers={"X-Request-ID": "lb-abc-123"})
    assert response["X-Request-ID"] == "lb-abc-123"
    assert len(anonymous.get("/accounts/login/", headers={"X-Request-ID": "bad id\n"})["X-Request-ID"]) == 32


def test_it_reports_the_webhook_events_no_worker_has_applied_yet(anonymous, settings, post_webhook) -> None:
    settings.METRICS_TOKEN = TOKEN
    post_webhook(zendesk_event(event_id="applied"))  # applied by the worker (tests.support.webhook_deliver)
    post_webhook(zendesk_event(event_id="waiting", ticket_id="2"), process=False)
    WebhookEvent.objects.filter(event_id="waiting").update(received_at=timezone.now() - timedelta(minutes=5))

    text = anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()

    assert "agentconsole_webhook_events_unprocessed 1.0" in text
    (line,) = [x for x in text.splitlines() if x.startswith("agentconsole_webhook_event_oldest_unprocessed_age")]
    age = float(line.split()[1])
    assert 300 <= age < 400
