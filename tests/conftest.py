from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone

from console.roles import ADMINS, REVIEWERS
from tests.factories import UserFactory
from tests.zendesk_standin import ZendeskStandIn, serve_zendesk
from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

WEBHOOK_URL = "/api/webhooks/zendesk"


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The real Redis broker the tests use, emptied before and after each test."""
    connection = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def broker_unreachable() -> Iterator[str]:
    """Point the Celery app at a port where nothing listens: a real broker outage, as the web process sees it."""
    from agentconsole.celery import app

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    probe.close()
    saved = app.conf.broker_url
    app.conf.broker_url = dead_url
    app._pool = None
    app.amqp._producer_pool = None
    yield dead_url
    app.conf.broker_url = saved
    app._pool = None
    app.amqp._producer_pool = None


PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per priority step, "<queue>\x06\x16<step>" after 0


def queued_task_messages(connection: redis.Redis) -> list[dict]:
    """The Celery messages waiting in the default queue, decoded: kombu keeps them in one Redis list per priority
    step (the highest first here; each list as Redis holds it, the newest first)."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    keys = [queue if step == 0 else f"{queue}\x06\x16{step}" for step in PRIORITY_STEPS]
    return [json.loads(raw) for key in keys for raw in connection.lrange(key, 0, -1)]


@pytest.fixture
def anonymous() -> Client:
    return Client()


def _client_for(user: object) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def outsider_user(db: None) -> object:
    return UserFactory(username="outsider")


@pytest.fixture
def reviewer_user(db: None) -> object:
    return UserFactory(username="reviewer", groups=[REVIEWERS])


@pytest.fixture
def admin_user(db: None) -> object:
    return UserFactory(username="admin", groups=[ADMINS])


@pytest.fixture
def outsider(outsider_user: object) -> Client:
    return _client_for(outsider_user)


@pytest.fixture
def reviewer(reviewer_user: object) -> Client:
    return _client_for(reviewer_user)


@pytest.fixture
def admin(admin_user: object) -> Client:
    return _client_for(admin_user)


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


@pytest.fixture
def post_webhook() -> Callable[..., object]:
    """POST a body to the webhook, signed with the configured secret unless headers are given."""

    def post(body: bytes | dict, *, headers: dict[str, str] | None = None, client: Client | None = None) -> object:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return (client or Client()).post(
            WEBHOOK_URL,
            data=raw,
            content_type="application/json",
            headers=signed_headers(raw) if headers is None else headers,
        )

    return post


@pytest.fixture
def zendesk_api(settings) -> Iterator[ZendeskStandIn]:
    """Zendesk configured and pointed at the local Zendesk stand-in (tests/zendesk_standin.py)."""
    for stand_in in serve_zendesk():
        settings.ZENDESK_API_URL = stand_in.url
        settings.ZENDESK_EMAIL = "agent@example.com"
        settings.ZENDESK_API_TOKEN = "zendesk-token"
        settings.ZENDESK_TIMEOUT_SECONDS = 5
        yield stand_in
