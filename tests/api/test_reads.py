from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.models import ProposedAction, Step
from agentconsole.keyset import CURSOR_INVALID
from agentconsole.pagination import OFFSET_GONE
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    TicketFactory,
    WorkflowFactory,
)
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

LIST_URLS = ["/api/tickets", "/api/runs", "/api/actions", "/api/workflows"]


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_it_filters_tickets_by_status_and_workflow(world, reviewer) -> None:
    solved = TicketFactory(status="solved")
    other = AgentRunFactory(workflow=WorkflowFactory(slug="other"), ticket=TicketFactory())
    AgentRunFactory(ticket=world.ticket, workflow=world.workflow)  # a second run must not repeat the ticket

    assert _ids(reviewer.get("/api/tickets?status=solved")) == [solved.pk]
    assert _ids(reviewer.get("/api/tickets?workflow=stale-cache")) == [world.ticket.pk]
    assert _ids(reviewer.get("/api/tickets?workflow=other")) == [other.ticket_id]
    assert reviewer.get("/api/tickets?status=melted").status_code == 422


def test_it_shows_a_ticket_with_its_comments_and_run_ids(world, reviewer) -> None:
    second = AgentRunFactory(ticket=world.ticket)

    response = reviewer.get(f"/api/tickets/{world.ticket.pk}")

    assert response.status_code == 200
    body = response.json()
    assert [comment["body"] for comment in body["comments"]] == ["Still broken."]
    assert sorted(body["run_ids"]) == sorted([world.run.pk, second.pk])
    assert body["tenant_id"] == "acme"
    assert reviewer.get("/api/tickets/999999").json() == {"detail": "No ticket 999999."}


def test_it_filters_runs_by_ticket_and_status(world, reviewer) -> None:
    done = AgentRunFactory(status="completed")

    assert _ids(reviewer.get(f"/api/runs?ticket={world.ticket.pk}")) == [world.run.pk]
    assert _ids(reviewer.get("/api/runs?status=completed")) == [done.pk]
    assert reviewer.get("/api/runs?ticket=abc").status_code == 422


def test_it_shows_a_run_with_its_steps_in_order(world, reviewer) -> None:
    StepFactory(run=world.run, index=2, kind=Step.Kind.FINAL, content="Done.")
    StepFactory(
        run=world.run,
        index=1,
        kind=Step.Kind.OBSERVATION,
        tool_name="run_sql",
        tool_input={"query": "select 1"},
        tool_output={"ok": True},
        latency_ms=12,
        tokens_in=30,
        tokens_out=4,
    )

    response = reviewer.get(f"/api/runs/{world.run.pk}")

    assert response.status_code == 200
    steps = response.json()["steps"]
    assert [step["index"] for step in steps] == [0, 1, 2]
    assert {
        key: steps[1][key] for key in ("kind", "tool", "input", "output", "latency_ms", "tokens_in", "tokens_out")
    } == {
        "kind": "observation",
        "tool": "run_sql",
        "input": {"query": "select 1"},
        "output": {"ok": True},
        "latency_ms": 12,
        "tokens_in": 30,
        "tokens_out": 4,
    }
    assert response.json()["workflow"] == "stale-cache"


def test_it_filters_actions_by_status_and_run(world, reviewer) -> None:
    elsewhere = ProposedActionFactory(status=ProposedAction.Status.PENDING)
    executed = ProposedActionFactory(run=world.run, status=ProposedAction.Status.EXECUTED)

    assert _ids(reviewer.get("/api/actions?status=pending")) == [world.action.pk, elsewhere.pk]
    assert _ids(reviewer.get(f"/api/actions?run={world.run.pk}")) == [world.action.pk, executed.pk]
    assert _ids(reviewer.get(f"/api/actions?run={world.run.pk}&status=executed")) == [executed.pk]


def _walk(client, url: str) -> list[list[int]]:
    pages, after = [], ""
    while True:
        page = client.get(url + (f"&after={after}" if after else "")).json()
        pages.append([item["id"] for item in page["items"]])
        if page["next"] is None:
            return pages
        after = page["next"]


def test_it_pages_by_cursor_and_caps_the_limit(reviewer) -> None:
    tickets = TicketFactory.create_batch(5)
    newest_first = [ticket.pk for ticket in reversed(tickets)]

    page = reviewer.get("/api/tickets?limit=2").json()
    assert [item["id"] for item in page["items"]] == newest_first[:2]
    assert set(page) == {"items", "next"}
    assert _walk(reviewer, "/api/tickets?limit=2") == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    TicketFactory.create_batch(100)
    assert len(reviewer.get("/api/tickets?limit=1000").json()["items"]) == 100
    assert reviewer.get("/api/tickets?limit=0").status_code == 422


@pytest.mark.parametrize("url", ["/api/tickets?limit=2", "/api/runs?limit=2", "/api/actions?limit=2"])
def test_it_walks_each_row_of_every_list_once_in_its_order(reviewer, url) -> None:
    for _ in range(5):
        ProposedActionFactory()
    pages = _walk(reviewer, url)
    seen = [pk for page in pages for pk in page]
    assert len(pages) == 3 and len(seen) == len(set(seen)) == 5
    assert seen == [item["id"] for item in reviewer.get(url.replace("limit=2", "limit=100")).json()["items"]]


def test_it_pages_the_workflows_by_cursor(reviewer) -> None:
    for name in ("Delta", "Alpha", "Charlie", "Bravo", "Echo"):
        WorkflowFactory(name=name)
    page = reviewer.get("/api/workflows?limit=2").json()
    assert [item["name"] for item in page["items"]] == ["Alpha", "Bravo"]
    rest = reviewer.get(f"/api/workflows?limit=10&after={page['next']}").json()
    assert [item["name"] for item in rest["items"]] == ["Charlie", "Delta", "Echo"]
    assert rest["next"] is None


LISTS = ["/api/tickets", "/api/runs", "/api/actions", "/api/workflows"]
NOT_CURSORS = ["after=garbage", "after=W10", "after=WyJ4Il0", "offset=1"]  # W10 is [], WyJ4Il0 is ["x"]
# Times that overflow when converted to UTC: ["0001-01-01T00:00:00+14:00", 1] and ["9999-12-31T23:59:59-14:00", 1].
OVERFLOWING = ["after=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwxXQ", "after=WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiwxXQ"]


@pytest.mark.parametrize(
    ("url", "query"),
    # ["x", 1] is no (created_at, id) cursor; it is a well-formed (name, id) one of the workflows list.
    [(url, query) for url in LISTS for query in NOT_CURSORS]
    + [(url, "after=WyJ4IiwxXQ") for url in LISTS[:3]]
    + [(url, query) for url in LISTS[:3] for query in OVERFLOWING],
)
def test_it_refuses_a_cursor_it_did_not_give_out_or_an_offset_with_400(reviewer, url, query) -> None:
    response = reviewer.get(f"{url}?{query}")
    assert response.status_code == 400
    assert response.json()["detail"] in (CURSOR_INVALID, OFFSET_GONE)


def _rows(count: int, reviewer_user) -> None:
    for _ in range(count):
        workflow = WorkflowFactory()
        run = AgentRunFactory(workflow=workflow)
        TicketCommentFactory(ticket=run.ticket)
        StepFactory(run=run)
        ProposedActionFactory(run=run, status="approved", decided_by=reviewer_user)


@pytest.mark.parametrize("url", LIST_URLS)
def test_it_answers_list_endpoints_in_a_fixed_number_of_queries(
    url, reviewer, reviewer_user, django_assert_max_num_queries
) -> None:
    _rows(1, reviewer_user)
    with CaptureQueriesContext(connection) as one:
        assert reviewer.get(url).status_code == 200
    _rows(6, reviewer_user)
    with django_assert_max_num_queries(len(one)):
        response = reviewer.get(url)

    assert len(response.json()["items"]) == 7


def test_it_serves_the_docs_and_the_schema(anonymous) -> None:
    docs = anonymous.get("/api/docs")
    schema = anonymous.get("/api/openapi.json")

    assert docs.status_code == 200
    assert b"openapi.json" in docs.content
    assert b"/static/ninja/swagger-ui-bundle.js" in docs.content  # bundled, never from a CDN
    assert b"cdn." not in docs.content
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/actions/{action_id}/approve" in paths
    assert "/api/webhooks/zendesk" in paths
    assert "bearer" in str(schema.json()["components"]["securitySchemes"]).lower()


def test_it_lists_tickets_without_reading_their_zendesk_payload(reviewer) -> None:
    payload = {"detail": {"description": "x" * 10_000}}  # the stored Zendesk event: TicketOut leaves it out
    TicketFactory(raw_payload=payload)
    with CaptureQueriesContext(connection) as one:
        assert reviewer.get("/api/tickets").status_code == 200
    tickets = [TicketFactory(raw_payload=payload) for _ in range(3)]
    with CaptureQueriesContext(connection) as four:
        response = reviewer.get("/api/tickets")

    assert len(four) == len(one)
    assert not [query["sql"] for query in four if "raw_payload" in query["sql"]]
    items = response.json()["items"]
    assert [item["subject"] for item in items[:3]] == [ticket.subject for ticket in reversed(tickets)]
    assert all("raw_payload" not in item for item in items)
    assert {item["tenant_id"] for item in items} == set(Ticket.objects.values_list("tenant_link__tenant_id", flat=True))
