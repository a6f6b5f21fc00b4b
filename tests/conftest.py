from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

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


def _database(request: pytest.FixtureRequest, *, wanted: bool) -> bool:
    """Open the test's database (transactional if the test asks for that); without `wanted`, only if it uses one."""
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if "transactional_db" in names or "live_server" in names or (marker and marker.kwargs.get("transaction")):
        request.getfixturevalue("transactional_db")
    elif wanted or "db" in names or marker is not None:
        request.getfixturevalue("db")
    else:
        return False
    return True


@pytest.fixture(autouse=True)
def sandbox_company(request: pytest.FixtureRequest) -> None:
    """Every test with a database starts with the sandbox connected as the company (its OpenAPI catalogue and
    contract file), as the demo has it. Installed once and kept by rolled-back tests; a transactional test's
    flush removes it, and the next test puts it back. Tests of another company install theirs over it."""
    from tests.company import sandbox_company_install

    if not _database(request, wanted=False):
        return
    from agent.company.models import ToolContract
    from agent.company.selectors import contract_tools, contract_tools_forget

    if not ToolContract.objects.exists():
        sandbox_company_install()
    contract_tools_forget()  # the tools of this test's database, not of one a transactional test flushed
    contract_tools()  # read now, as a long-running process has them, so a test's query counts are its own


@pytest.fixture
def northwind(request: pytest.FixtureRequest, sandbox_company: None, settings: Any) -> Iterator[Any]:
    """A second company, connected by configuration only: Northwind Seats' own Admin API on loopback (other paths,
    field names, an API-key header, its own idempotency header), its OpenAPI document and contract file
    (tests/companies/northwind/) and the settings that point the console at it. Use it to run any test against
    a company other than the sandbox; `northwind.accounts`, `.swallow` and `.requests` drive and observe it."""
    from tests.companies.northwind import API_KEY, CONTRACTS, KEY_HEADER, OPENAPI, PICKED, Account, Northwind, serve
    from tests.company import company_install

    _database(request, wanted=True)
    company_install(OPENAPI, CONTRACTS, PICKED)
    company = Northwind(accounts={"nw-1042": Account("nw-1042", "Fabrikam", seat_cap=20, seats_in_use=20)})
    for running in serve(company):
        settings.ADMIN_API_URL = running.url
        settings.ADMIN_API_AUTH = "api_key"
        settings.ADMIN_API_KEY_HEADER = KEY_HEADER
        settings.ADMIN_API_KEY = API_KEY
        yield running
