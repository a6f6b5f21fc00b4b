"""Plain helpers the tests share (fixtures live in tests/conftest.py): signed Zendesk webhook events, the Celery
messages waiting in the broker, a logged-in client."""

from __future__ import annotations

import json

import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

WEBHOOK_URL = "/api/webhooks/zendesk"


PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per priority step, "<queue>\x06\x16<step>" after 0


def queued_task_messages(connection: redis.Redis) -> list[dict]:
    """The Celery messages waiting in the default queue, decoded: kombu keeps them in one Redis list per priority
    step (the highest first here; each list as Redis holds it, the newest first)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    keys = [queue if step == 0 else f"{queue}\x06\x16{step}" for step in PRIORITY_STEPS]
    return [json.loads(raw) for key in keys for raw in connection.lrange(key, 0, -1)]


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
