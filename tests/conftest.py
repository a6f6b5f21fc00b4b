from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client

from agent import llm
from agentconsole.roles import ADMINS, REVIEWERS
from sandbox.models import FaultSwitch
from sandbox.seed import sandbox_seed
from tests.factories import UserFactory
from tests.http_standin import Scripted, StandIn, serve
from tests.support import WEBHOOK_URL, client_for, signed_headers
from tests.zendesk_standin import ZendeskStandIn, serve_zendesk


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


@pytest.fixture
def anonymous() -> Client:
    return Client()


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
    return client_for(outsider_user)


@pytest.fixture
def reviewer(reviewer_user: object) -> Client:
    return client_for(reviewer_user)


@pytest.fixture
def admin(admin_user: object) -> Client:
    return client_for(admin_user)


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


@pytest.fixture
def bedrock(monkeypatch, settings):
    """A stand-in of the Bedrock Converse API on 127.0.0.1, reached the way a VPC endpoint would be."""
    for standin in serve():
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        settings.AGENT_LLM_PROVIDER = "bedrock"
        settings.AGENT_ROLE_ARN = ""
        settings.BEDROCK_MAX_ATTEMPTS = 3
        llm._bedrock.cache_clear()
        yield standin
        llm._bedrock.cache_clear()


@pytest.fixture
def bedrock_company(bedrock, settings, live_server):
    """The Bedrock stand-in, and the seeded sandbox company's Admin API on a live server."""
    settings.ADMIN_API_URL = f"{live_server.url}/sandbox/admin-api/v1"
    sandbox_seed()
    FaultSwitch.objects.update_or_create(pk=1, defaults={})
    return bedrock


@pytest.fixture
def admin_standin(settings):
    """A stand-in of the company's Admin API, scripted per test: one attempt per call, a short timeout."""
    for standin in serve(StandIn(fallback=Scripted(500, {"error": {"code": "unscripted", "message": "no script"}}))):
        settings.ADMIN_API_URL = standin.url
        settings.ADMIN_API_MAX_ATTEMPTS = 1
        settings.ADMIN_API_TIMEOUT_SECONDS = 0.5
        yield standin
