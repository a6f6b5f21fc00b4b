"""The JSON API refuses what it cannot store with a 400 naming the field, bounds paging, and documents one enum
per field and every 4xx it gives."""

from __future__ import annotations

import json

import pytest

from agent.models import ProposedAction, Workflow
from agentconsole.api import api
from agentconsole.jsonlimits import HAS_LONE_SURROGATE, HAS_NUL, NESTED_TOO_DEEP, NUMBER_OUT_OF_RANGE
from agentconsole.keyset import CURSOR_MAX_CHARS
from agentconsole.pagination import MAX_LIMIT
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _post_raw(client, url: str, raw: bytes):
    return client.post(url, raw, content_type="application/json")


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/actions/{action}/reject", {"reason": "no\u0000"}, "reason"),
        ("/api/actions/{action}/rate", {"value": 1, "comment": "bad\u0000"}, "comment"),
        ("/api/steps/{step}/rate", {"value": -1, "comment": "bad\u0000"}, "comment"),
        ("/api/workflows/stale-cache/phase", {"phase": "shadow", "reason": "\u0000"}, "reason"),
        ("/api/autonomy/stop", {"reason": "stop\u0000"}, "reason"),
        ("/api/actions/{action}/approve", {"args": {"tenant_id": "acme\u0000"}}, "args.tenant_id"),
    ],
)
def test_it_refuses_a_nul_in_any_text_with_400_and_changes_nothing(world, admin_token, url, body, field) -> None:
    events = AuditEvent.objects.count()
    url = url.format(action=world.action.pk, step=world.step.pk)

    response = admin_token.post(url, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"field": field, "message": HAS_NUL}]
    assert AuditEvent.objects.count() == events
    world.action.refresh_from_db()
    assert world.action.status == ProposedAction.Status.PENDING
    assert Workflow.objects.get(slug="stale-cache").phase == Workflow.Phase.TRIAGE


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"reason": "\\ud800"}', HAS_LONE_SURROGATE),
        (b'{"reason": "x", "n": ' + b"1" * 5000 + b"}", NUMBER_OUT_OF_RANGE),
        (b'{"reason": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", NESTED_TOO_DEEP.format(limit=32)),
    ],
)
def test_it_refuses_bodies_it_cannot_parse_safely_with_400(world, reviewer_token, raw, problem) -> None:
    response = _post_raw(reviewer_token, f"/api/actions/{world.action.pk}/reject", raw)

    assert response.status_code == 400
    assert problem in [error["message"] for error in response.json()["errors"]]


@pytest.mark.parametrize("url", ["/api/tickets?workflow=a%00b", "/api/runs?status=queued%00", "/api/tickets?a%00=1"])
def test_it_refuses_a_nul_in_the_query_with_400(reviewer_token, url) -> None:
    response = reviewer_token.get(url)

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == HAS_NUL


@pytest.mark.parametrize("url", ["/api/tickets", "/api/runs", "/api/actions", "/api/workflows"])
def test_it_bounds_the_limit_and_the_cursor(reviewer_token, url) -> None:
    assert reviewer_token.get(f"{url}?limit={MAX_LIMIT}").status_code == 200
    assert reviewer_token.get(f"{url}?limit={MAX_LIMIT + 1}").status_code == 422
    assert reviewer_token.get(f"{url}?limit={2**64}").status_code == 422
    assert reviewer_token.get(f"{url}?after={'x' * (CURSOR_MAX_CHARS + 1)}").status_code == 422


@pytest.mark.parametrize(
    "url", ["/api/tickets/{big}", "/api/runs/{big}", "/api/actions/{big}", "/api/runs?ticket={big}"]
)
def test_it_answers_ids_beyond_a_bigint_as_invalid_not_as_a_crash(reviewer_token, url) -> None:
    assert reviewer_token.get(url.format(big=2**63)).status_code == 422


def test_it_refuses_a_nul_in_a_path_slug(admin_token) -> None:
    response = admin_token.post("/api/workflows/a%00/phase", {"phase": "shadow", "reason": "x"}, "application/json")
    assert response.status_code == 422


def test_it_documents_one_enum_per_field_and_every_4xx() -> None:
    document = api.get_openapi_schema()
    parameters = {
        (path, parameter["name"]): parameter["schema"]
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    }

    def enum(schema: dict) -> list[str]:
        return next(option["enum"] for option in schema["anyOf"] if "enum" in option)

    assert enum(parameters[("/api/tickets", "status")]) == ["new", "open", "pending", "hold", "solved", "closed"]
    assert enum(parameters[("/api/runs", "status")])[:2] == ["queued", "running"]
    assert enum(parameters[("/api/actions", "status")])[:2] == ["dry_run", "pending"]
    assert "Status" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            codes = {str(code) for code in operation["responses"]}
            if path == "/api/webhooks/zendesk":
                assert codes == {"202", "400", "401", "413"}
            else:
                assert {"400", "401", "403", "422"} <= codes, (path, codes)
                if "{" in path:
                    assert "404" in codes, path


def test_it_accepts_documented_filter_values(reviewer_token) -> None:
    for status in ["awaiting_approval", "escalated"]:
        assert reviewer_token.get(f"/api/runs?status={status}").status_code == 200
    for status in ["dry_run", "executed"]:
        assert reviewer_token.get(f"/api/actions?status={status}").status_code == 200
    assert reviewer_token.get("/api/tickets?status=hold").status_code == 200
    assert reviewer_token.get("/api/tickets?status=dry_run").status_code == 422
    assert json.loads(reviewer_token.get("/api/tickets?status=dry_run").content)["detail"][0]["loc"][-1] == "status"
