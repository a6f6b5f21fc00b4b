from __future__ import annotations

import ast
import functools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from agent import llm
from agentconsole.roles import ADMINS, REVIEWERS
from tests.factories import UserFactory
from tests.http_standin import Scripted, StandIn, serve
from tests.support import client_for, webhook_deliver
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
def broker_unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the Celery app at a port where nothing listens: a real broker outage, as the web process sees it."""
    from agentconsole.celery import app

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead_url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    probe.close()
    saved = app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its configuration (settings_test sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", dead_url)
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
    """POST a body to the webhook (tests.support.webhook_deliver), signed unless headers are given, and apply the
    event as a worker would unless process=False."""
    return webhook_deliver


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
    from agent.company.selectors import contract_tools, contract_tools_forget
    from agent.models import ToolContract

    if not ToolContract.objects.exists():
        sandbox_company_install()
    contract_tools_forget()  # the tools of this test's database, not of one a transactional test flushed
    contract_tools()  # read now, as a task that already started has them, so a test's query counts are its own


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
        llm.engine_forget()
        yield standin
        llm.engine_forget()


@pytest.fixture
def bedrock_company(bedrock, company):
    """The Bedrock stand-in, and the seeded company (below)."""
    company.seed()
    return bedrock


@pytest.fixture
def admin_standin(settings):
    """A stand-in of the company's Admin API, scripted per test: one attempt per call, a short timeout."""
    for standin in serve(StandIn(fallback=Scripted(500, {"error": {"code": "unscripted", "message": "no script"}}))):
        settings.ADMIN_API_URL = standin.url
        settings.ADMIN_API_MAX_ATTEMPTS = 1
        settings.ADMIN_API_TIMEOUT_SECONDS = 0.5
        yield standin


# --- The company the agent works for ----------------------------------------------------------------------------
# The sandbox (a stand-in company) is chosen here and nowhere else. Tests that use `company`, import the sandbox,
# live below a conftest that imports it, or are marked `company` by hand (they read its schema without importing
# it) need the sandbox installed: they carry the `company` marker, and `make test` runs them in their own pass
# (sandbox.settings_test). Every other test also passes without the sandbox
# (agentconsole.settings_test), where these hooks leave the company's tests out.


class Company:
    """The stand-in company on pytest-django's live server, reached as the product reaches a real one: its Admin
    API over HTTP, its logs through boto3's CloudWatch Logs client. `env` is what another process (a Celery worker,
    a production server) needs to reach it. Calling it seeds it and configures the console for it as the demo does."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url = url
        self.env = env

    def seed(self) -> None:
        """The company's own data (tenants, users, billing, configuration, logs), with no injected faults."""
        from sandbox.models import FaultSwitch
        from sandbox.seed import sandbox_seed

        sandbox_seed()
        FaultSwitch.objects.update_or_create(pk=1, defaults={})

    def __call__(self, **phases: str) -> None:
        """Seed the company, then the console's configuration for it; workflows in the phases a test asks for."""
        from agent.models import ConfigPatch, Workflow
        from console.demo import (
            DEMO_CONFIG_PATCHES,
            DEMO_ORGANIZATIONS,
            DEMO_REQUESTERS,
            DEMO_WORKFLOWS,
            demo_requester_id,
        )
        from tickets.models import HelpdeskUser, TenantLink

        self.seed()
        for organization_id, name, tenant_id in DEMO_ORGANIZATIONS:
            TenantLink.objects.create(organization_id=organization_id, organization_name=name, tenant_id=tenant_id)
        for organization_id, name, email, locale in DEMO_REQUESTERS:
            HelpdeskUser.objects.create(
                external_id=demo_requester_id(organization_id), name=name, email=email, locale=locale
            )
        for patch in DEMO_CONFIG_PATCHES:
            ConfigPatch.objects.create(**patch)
        for spec in DEMO_WORKFLOWS:
            Workflow.objects.create(**{**spec, "phase": phases.get(spec["slug"].replace("-", "_"), spec["phase"])})


@pytest.fixture
def company(transactional_db: None, live_server: object, settings: object, monkeypatch: pytest.MonkeyPatch) -> Company:
    """The company the agent works for, with this process's settings pointed at it (nothing seeded yet)."""
    url = f"{live_server.url}/sandbox"
    env = {
        "ADMIN_API_URL": f"{url}/admin-api/v1",
        "ADMIN_API_TOKEN": settings.SANDBOX_ADMIN_API_TOKEN,
        "LOGS_GROUP_NAME": settings.LOGS_GROUP_NAME,
        # boto3's own endpoint override: the sandbox answers CloudWatch Logs' API (sandbox/cloudwatch_logs.py).
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": f"{url}/cloudwatch-logs",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AGENT_ROLE_ARN": "",
    }
    for name in ("ADMIN_API_URL", "ADMIN_API_TOKEN", "LOGS_GROUP_NAME", "AGENT_ROLE_ARN"):
        setattr(settings, name, env[name])
    for name in ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, env[name])
    return Company(url=url, env=env)


TESTS = Path(__file__).resolve().parent


@functools.cache
def imports_sandbox(path: Path) -> bool:
    """Whether a test module or conftest imports the sandbox, at module level or inside a function."""
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name == "sandbox" or name.startswith("sandbox.") for name in names):
            return True
    return False


def needs_sandbox(path: Path) -> bool:
    """A test file that imports the sandbox, or lies below a conftest (other than this one) that does."""
    if path.suffix == ".py" and imports_sandbox(path):
        return True
    folder = path if path.is_dir() else path.parent
    while folder != TESTS and TESTS in folder.parents:
        if (folder / "conftest.py").exists() and imports_sandbox(folder / "conftest.py"):
            return True
        folder = folder.parent
    return False


def sandbox_installed() -> bool:
    return "sandbox" in settings.INSTALLED_APPS


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Without the sandbox, a module that imports it cannot even be imported: leave it out.
    if not sandbox_installed() and needs_sandbox(collection_path):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    without_sandbox = not sandbox_installed()
    kept, left_out = [], []
    for item in items:
        if "northwind" in getattr(item, "fixturenames", ()) and item.get_closest_marker("django_db") is None:
            # The fixture opens the database itself; the mark tells pytest-django to create it when such a test
            # is the only kind selected.
            item.add_marker(pytest.mark.django_db)
        marked = item.get_closest_marker("company") is not None  # e.g. a test of the sandbox's support views
        if marked or "company" in getattr(item, "fixturenames", ()) or needs_sandbox(Path(str(item.path))):
            item.add_marker(pytest.mark.company)
            if without_sandbox:
                left_out.append(item)
                continue
        kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
