"""Plain helpers the tests share (fixtures live in tests/conftest.py): signed Zendesk webhook events delivered and
applied as a worker would, the Celery messages waiting in the broker, a logged-in client."""

from __future__ import annotations

import base64
import contextlib
import json

import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from agent.enqueue import EVENT_PROCESS
from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

WEBHOOK_URL = "/api/webhooks/zendesk"


PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per priority step, "<queue>\x06\x16<step>" after 0


def queued_task_messages(connection: redis.Redis) -> list[dict]:
    """The Celery messages waiting in the default queue, decoded: kombu keeps them in one Redis list per priority
    step (the highest first here; each list as Redis holds it, the newest first)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    keys = [queue if step == 0 else f"{queue}\x06\x16{step}" for step in PRIORITY_STEPS]
    return [json.loads(raw) for key in keys for raw in connection.lrange(key, 0, -1)]


def commit_callbacks_run() -> int:
    """Run the on-commit callbacks waiting in the test's transaction, as the commit of the request or of the task
    that registered them would, and drop them (a django_capture_on_commit_callbacks block around the caller must not
    run them a second time). Returns how many ran."""
    ran = 0
    while connection.run_on_commit:
        pending = list(connection.run_on_commit)
        del connection.run_on_commit[:]
        for _savepoints, callback, robust in pending:
            ran += 1
            if robust:
                with contextlib.suppress(Exception):  # a robust callback's failure is logged by its own code
                    callback()
            else:
                callback()
    return ran


def webhook_events_process() -> list[str]:
    """Be the worker: take every webhook event message waiting in the broker off the queue, run its task (eagerly,
    in this test's transaction), then commit what the task queued (a run's first message). Returns the tasks'
    answers, one per message taken."""
    from agent.tasks import zendesk_event_process_task

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    answers = []
    try:
        for key in [queue if step == 0 else f"{queue}\x06\x16{step}" for step in PRIORITY_STEPS]:
            for raw in reversed(broker.lrange(key, 0, -1)):  # the oldest first
                message = json.loads(raw)
                if message["headers"]["task"] != EVENT_PROCESS:
                    continue
                broker.lrem(key, 1, raw)
                args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                answers.append(zendesk_event_process_task.apply(args=args, kwargs=kwargs, throw=True).get())
                commit_callbacks_run()
    finally:
        broker.close()
    return answers


def webhook_deliver(
    body: bytes | dict, *, headers: dict[str, str] | None = None, client: Client | None = None, process: bool = True
) -> object:
    """POST a body to the webhook, signed with the configured secret unless headers are given; then, unless
    `process` is False, commit the request (its task message goes out) and apply the event as a worker would."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = (client or Client()).post(
        WEBHOOK_URL,
        data=raw,
        content_type="application/json",
        headers=signed_headers(raw) if headers is None else headers,
    )
    if process:
        commit_callbacks_run()
        webhook_events_process()
    return response


def client_for(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


def zendesk_event(
    *,
    event_id: str = "evt-1",
    event_type: str = "zen:event-type:ticket.created",
    ticket_id: str | int = "35436",
    **detail: object,
) -> dict:
    return {
        "id": event_id,
        "type": event_type,
        "account_id": 88888888,
        "time": "2026-11-23T10:00:00Z",
        "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{ticket_id}",
        "detail": {
            "id": ticket_id,
            "subject": "Dashboard shows stale data",
            "description": "Numbers stopped updating this morning.",
            "requester_id": 9001,
            "organization_id": "360001",
            "group_id": None,
            "status": "NEW",
            "priority": "HIGH",
            "tags": ["stale_cache"],
            "created_at": "2026-11-23T10:00:00Z",
            "updated_at": "2026-11-23T10:00:00Z",
            **detail,
        },
        "event": {},
    }


def signed_headers(body: bytes, *, secret: str | None = None, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = compute_signature(secret=secret or settings.ZENDESK_WEBHOOK_SECRET, timestamp=timestamp, body=body)
    return {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: timestamp}
