"""Every HTML page of the project x anonymous / outsider / reviewer / admin x GET and POST, as one table.

The API has its own matrix (tests/api/test_permissions.py). This one is complete by construction: it walks the
URL resolver, so a new named page outside admin/, sandbox/ and api/ fails here until it has a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from agent.models import AgentRun, ProposedAction, Rating, Replay, Step, Workflow
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TenantLinkFactory,
    TicketCommentFactory,
    TicketFactory,
    WorkflowFactory,
)

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "outsider", "reviewer", "admin")
# Mounted elsewhere: the Django admin (only its index is in the table), the sandbox stand-in, the API matrix.
NOT_OURS = ("admin/", "sandbox/", "api/")

# A cell is a status code, or the Location a 302 must send to ({url} is the page itself; {ticket}, {action},
# {workflow} are the world's objects).
Expect = int | str
LOGIN = "/accounts/login/?next={url}"
ADMIN_LOGIN = "/admin/login/?next={url}"
TO_ACTION = "/tickets/{ticket}/#action-{action}"
TO_DRAFT = "/tickets/{ticket}/#step-{draft}"
TO_TICKET = "/tickets/{ticket}/"
TO_RUN = "/tickets/{ticket}/#run-{run}"
NO = (405, 405, 405, 405)  # the wrong method, for everyone: require_GET / require_POST run before login_required


@dataclass(frozen=True)
class Row:
    get: tuple[Expect, Expect, Expect, Expect]
    post: tuple[Expect, Expect, Expect, Expect]
    data: dict[str, str] = field(default_factory=dict)
    writes: bool = False  # a granted POST must change the world; a refused one never does


MATRIX: dict[str, Row] = {
    # url name                  GET: anonymous, outsider, reviewer, admin / POST: the same four
    "console:home": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "console:queue-counts": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "console:next-pending": Row(get=(LOGIN, 403, 200, 200), post=(LOGIN, 403, TO_ACTION, TO_ACTION), writes=True),
    "console:ticket-list": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "console:ticket-live": Row(get=(LOGIN, 403, 200, 200), post=NO),
    # Asked without the step it continues before: a 400 that names it (the view's own tests cover the rest).
    "console:run-steps-earlier": Row(get=(LOGIN, 403, 400, 400), post=NO),
    "console:ticket-presence": Row(get=NO, post=(LOGIN, 403, TO_TICKET, TO_TICKET)),
    "console:ticket-claim": Row(get=NO, post=(LOGIN, 403, TO_TICKET, TO_TICKET), writes=True),
    "console:ticket-release": Row(get=NO, post=(LOGIN, 403, TO_TICKET, TO_TICKET)),
    "console:action-respond": Row(
        get=NO, post=(LOGIN, 403, TO_ACTION, TO_ACTION), data={"feedback": "Check the logs first."}, writes=True
    ),
    "console:action-refresh-state": Row(get=NO, post=(LOGIN, 403, TO_ACTION, TO_ACTION)),
    "console:run-take-over": Row(get=NO, post=(LOGIN, 403, TO_RUN, TO_RUN), writes=True),
    # The world's run is waiting on a reviewer, not escalated: closing it is refused (409) even when allowed.
    "console:run-close": Row(get=NO, post=(LOGIN, 403, 409, 409), data={"outcome": "resolved"}),
    "console:ticket-detail": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "console:action-detail": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "console:action-approve": Row(get=NO, post=(LOGIN, 403, TO_ACTION, TO_ACTION), writes=True),
    "console:action-reject": Row(get=NO, post=(LOGIN, 403, TO_ACTION, TO_ACTION), data={"reason": "No"}, writes=True),
    "console:action-rate": Row(get=NO, post=(LOGIN, 403, TO_ACTION, TO_ACTION), data={"value": "1"}, writes=True),
    "console:step-rate": Row(get=NO, post=(LOGIN, 403, TO_DRAFT, TO_DRAFT), data={"value": "-1"}, writes=True),
    "agent:workflow-list": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "agent:workflow-phase": Row(
        get=NO,
        post=(LOGIN, 403, 403, "/workflows/#workflow-{workflow}"),
        data={"phase": "shadow", "reason": "Back to watching."},
        writes=True,
    ),
    "agent:autonomy-stop": Row(
        get=NO, post=(LOGIN, 403, 403, "/workflows/"), data={"reason": "Incident."}, writes=True
    ),
    "agent:dashboard": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "agent:workflow-versions": Row(get=(LOGIN, 403, 200, 200), post=NO),
    # Admins start replays and suite runs; the world's workflow has no ended run and no regression case: 400.
    "agent:workflow-replay": Row(get=NO, post=(LOGIN, 403, 403, 400), data={"limit": "5"}),
    "agent:workflow-suite": Row(get=NO, post=(LOGIN, 403, 403, 400)),
    "agent:replay-detail": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "agent:gaps": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "agent:gaps-csv": Row(get=(LOGIN, 403, 200, 200), post=NO),
    "audit:event-list": Row(get=(LOGIN, 403, 200, 200), post=NO),
    # An empty login form is shown again with its errors; a logged-in user may still open the login page.
    "login": Row(get=(200, 200, 200, 200), post=(200, 200, 200, 200)),
    "logout": Row(get=NO, post=("/accounts/login/",) * 4),
    # The Zendesk sidebar authenticates with Zendesk's signed token and then a bearer token, never the console's
    # session cookie: being logged in to the console opens nothing there (tests/console/views/test_zendesk_sidebar.py).
    "console:zendesk-sidebar": Row(get=(403,) * 4, post=(403,) * 4),
    "console:zendesk-sidebar-panel": Row(get=(403,) * 4, post=NO),
    "console:zendesk-sidebar-approve": Row(get=NO, post=(403,) * 4),
    "console:zendesk-sidebar-reject": Row(get=NO, post=(403,) * 4, data={"reason": "No"}),
    "console:zendesk-sidebar-rate": Row(get=NO, post=(403,) * 4, data={"value": "1"}),
    # The Django admin lets in is_staff users only; the console's groups (even admins) are not staff.
    "admin:index": Row(get=(ADMIN_LOGIN,) * 4, post=(ADMIN_LOGIN,) * 4),
}


@dataclass
class World:
    ticket: object
    run: AgentRun
    action: ProposedAction
    draft: Step
    workflow: Workflow
    autonomous: Workflow
    replay: Replay

    def snapshot(self) -> tuple[object, ...]:
        """Everything a POST in the table could change."""
        self.action.refresh_from_db()
        self.workflow.refresh_from_db()
        self.autonomous.refresh_from_db()
        self.ticket.refresh_from_db()
        self.run.refresh_from_db()
        return (
            self.action.status,
            self.workflow.phase,
            self.autonomous.phase,
            Rating.objects.count(),
            self.ticket.assignee_id,
            self.run.status,
            self.run.outcome,
            Replay.objects.count(),
        )


@pytest.fixture
def world() -> World:
    """A ticket whose triage run waits on one pending write and has drafted a reply; one autonomous workflow."""
    workflow = WorkflowFactory(slug="stale-cache", phase=Workflow.Phase.TRIAGE)
    autonomous = WorkflowFactory(slug="trials", phase=Workflow.Phase.AUTONOMOUS)
    ticket = TicketFactory(tenant_link=TenantLinkFactory(tenant_id="acme"))
    TicketCommentFactory(ticket=ticket, body="Still broken.")
    run = AgentRunFactory(ticket=ticket, workflow=workflow, status="awaiting_approval")
    step = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="reset_tenant_cache")
    draft = StepFactory(
        run=run, index=1, kind=Step.Kind.ACTION, tool_name="reply_to_customer", tool_input={"body": "Hi"}
    )
    action = ProposedActionFactory(run=run, step=step, args={"tenant_id": "acme"}, status=ProposedAction.Status.PENDING)
    replay = Replay.objects.create(workflow=workflow, version=run.version)
    return World(ticket=ticket, run=run, action=action, draft=draft, workflow=workflow, autonomous=autonomous,
                 replay=replay)  # fmt: skip


def _args(name: str, world: World) -> list[object]:
    if name == "console:run-steps-earlier":
        return [world.ticket.pk, world.run.pk]
    if name.startswith("console:ticket-") and name != "console:ticket-list":
        return [world.ticket.pk]
    if name.startswith("console:run-"):
        return [world.run.pk]
    if name.startswith(("console:action-", "console:zendesk-sidebar-")) and name != "console:zendesk-sidebar-panel":
        return [world.action.pk]
    if name == "console:zendesk-sidebar-panel":
        return [world.ticket.external_id]
    if name == "console:step-rate":
        return [world.draft.pk]
    if name in ("agent:workflow-phase", "agent:workflow-versions", "agent:workflow-replay", "agent:workflow-suite"):
        return [world.workflow.slug]
    if name == "agent:replay-detail":
        return [world.replay.pk]
    return []


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str | None]]:
    """(route, namespaced name) of every pattern; name is None for an unnamed one."""
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route, f"{namespace}{entry.namespace}:" if entry.namespace else namespace)
        elif isinstance(entry, URLPattern):
            yield route, f"{namespace}{entry.name}" if entry.name else None


def _pages() -> dict[str, str | None]:
    return {route: name for route, name in _walk(get_resolver()) if not route.startswith(NOT_OURS)}


def test_it_has_a_row_for_every_page() -> None:
    pages = _pages()
    unnamed = sorted(route for route, name in pages.items() if name is None)
    missing = sorted({name for name in pages.values() if name} - set(MATRIX))
    stale = sorted(set(MATRIX) - {name for name in pages.values() if name} - {"admin:index"})
    assert (unnamed, missing, stale) == ([], [], [])


def test_it_finds_the_pages_it_walks() -> None:
    # Guards the walk itself: were it to find nothing, the test above would pass vacuously.
    everything = dict(_walk(get_resolver()))
    assert "admin:index" in everything.values()
    assert any(route.startswith("api/") for route in everything)
    assert {"console:home", "agent:dashboard", "audit:event-list", "login", "logout"} <= set(_pages().values())


CASES = [
    pytest.param(name, method, role, cell[ROLES.index(role)], id=f"{method} {name} {role}")
    for name, row in MATRIX.items()
    for method, cell in (("GET", row.get), ("POST", row.post))
    for role in ROLES
]


@pytest.mark.parametrize(("name", "method", "role", "expected"), CASES)
def test_it_gives_each_user_the_status_in_the_table(request, world, name, method, role, expected) -> None:
    row = MATRIX[name]
    url = reverse(name, args=_args(name, world))
    client: Client = request.getfixturevalue(role)
    before = world.snapshot()

    response = client.get(url) if method == "GET" else client.post(url, row.data)

    if isinstance(expected, str):
        location = expected.format(
            url=url,
            ticket=world.ticket.pk,
            run=world.run.pk,
            action=world.action.pk,
            draft=world.draft.pk,
            workflow=world.workflow.slug,
        )
        assert (response.status_code, response.get("Location")) == (302, location)
    else:
        assert response.status_code == expected
    refused = expected in (403, 405) or (isinstance(expected, str) and "/login/?next=" in expected)
    if refused:
        assert world.snapshot() == before
    elif method == "POST" and row.writes:
        assert world.snapshot() != before
