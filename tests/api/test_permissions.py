"""Every API route, every kind of caller, both ways to authenticate: the same permissions as the console."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from agent.models import ProposedAction, Workflow
from agentconsole.api import api
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db

# route -> expected status for (anonymous, outsider, reviewer, admin). The webhook proves itself by its signature
# alone: no session or token lets an unsigned delivery in.
MATRIX: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("GET", "/api/tickets"): (401, 403, 200, 200),
    ("GET", "/api/tickets/{ticket}"): (401, 403, 200, 200),
    ("GET", "/api/runs"): (401, 403, 200, 200),
    ("GET", "/api/runs/{run}"): (401, 403, 200, 200),
    ("GET", "/api/actions"): (401, 403, 200, 200),
    ("GET", "/api/actions/{action}"): (401, 403, 200, 200),
    ("POST", "/api/actions/{action}/approve"): (401, 403, 200, 200),
    ("POST", "/api/actions/{action}/reject"): (401, 403, 200, 200),
    ("POST", "/api/actions/{action}/respond"): (401, 403, 200, 200),
    ("POST", "/api/actions/{action}/rate"): (401, 403, 200, 200),
    ("POST", "/api/runs/{run}/take-over"): (401, 403, 200, 200),
    # The world's run waits on a reviewer; only an escalated or taken-over run is closed (409 once allowed in).
    ("POST", "/api/runs/{run}/close"): (401, 403, 409, 409),
    ("POST", "/api/steps/{step}/rate"): (401, 403, 200, 200),
    ("GET", "/api/workflows"): (401, 403, 200, 200),
    ("POST", "/api/workflows/{workflow}/phase"): (401, 403, 403, 200),
    ("POST", "/api/autonomy/stop"): (401, 403, 403, 200),
    ("POST", "/api/webhooks/zendesk"): (401, 401, 401, 401),
    ("GET", "/api/docs"): (200, 200, 200, 200),
    ("GET", "/api/openapi.json"): (200, 200, 200, 200),
}
BODIES = {
    "/api/actions/{action}/approve": {},
    "/api/actions/{action}/reject": {"reason": "Wrong tenant."},
    "/api/actions/{action}/respond": {"feedback": "Check the logs first."},
    "/api/runs/{run}/take-over": {"reason": "I know this customer."},
    "/api/runs/{run}/close": {"outcome": "resolved"},
    "/api/actions/{action}/rate": {"value": 1},
    "/api/steps/{step}/rate": {"value": -1, "comment": "Too long."},
    "/api/workflows/{workflow}/phase": {"phase": "shadow", "reason": "Back to watching."},
    "/api/autonomy/stop": {"reason": "Incident."},
    "/api/webhooks/zendesk": {"id": "evt"},
}
ROLES = ("anonymous", "outsider", "reviewer", "admin")
CASES = [
    pytest.param(method, route, role, auth, expected[ROLES.index(role)], id=f"{method} {route} {role} {auth}")
    for (method, route), expected in MATRIX.items()
    for role in ROLES
    for auth in ("session", "token")
]


def _client(request: pytest.FixtureRequest, role: str, auth: str) -> Client:
    if role == "anonymous":
        return Client()
    if auth == "session":
        return request.getfixturevalue(role)
    return token_client(request.getfixturevalue(f"{role}_user"))


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_it_lists_every_api_route_in_the_matrix() -> None:
    schema = api.get_openapi_schema()
    served = {(method.upper(), _shape(path)) for path, operations in schema["paths"].items() for method in operations}
    documented = {
        (method, _shape(route)) for method, route in MATRIX if route not in ("/api/docs", "/api/openapi.json")
    }
    assert served == documented


@pytest.mark.parametrize(("method", "route", "role", "auth", "expected"), CASES)
def test_it_applies_the_console_permissions(request, world, method, route, role, auth, expected) -> None:
    url = route.format(
        ticket=world.ticket.pk,
        run=world.run.pk,
        action=world.action.pk,
        step=world.step.pk,
        workflow=world.workflow.slug,
    )
    client = _client(request, role, auth)
    response = client.get(url) if method == "GET" else client.post(url, BODIES[route], content_type="application/json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["detail"]
    world.action.refresh_from_db()
    world.workflow.refresh_from_db()
    if expected >= 400:  # a refusal changes nothing
        assert world.action.status == ProposedAction.Status.PENDING
        assert world.workflow.phase == Workflow.Phase.TRIAGE
