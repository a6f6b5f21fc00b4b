from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agent.models import AgentRun
from agent.tasks import zendesk_event_process_task
from agent.webhook import BODY_TOO_LARGE
from audit.models import AuditEvent
from tests.factories import TenantLinkFactory, WorkflowFactory
from tests.support import (
    WEBHOOK_URL,
    commit_callbacks_run,
    queued_task_messages,
    signed_headers,
    webhook_events_process,
    zendesk_event,
)
from tickets.models import Ticket, TicketComment, WebhookEvent
from tickets.zendesk_webhook import (
    BODY_NOT_JSON,
    BODY_WRONG_SHAPE,
    SIGNATURE_INVALID,
    SIGNATURE_MISSING,
    TIMESTAMP_MALFORMED,
    TIMESTAMP_STALE,
)

pytestmark = pytest.mark.django_db


def _nothing_stored() -> bool:
    return not WebhookEvent.objects.exists() and not Ticket.objects.exists() and not AgentRun.objects.exists()


def test_it_stores_the_event_and_enqueues_one_message_and_nothing_else(post_webhook, broker) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = post_webhook(zendesk_event(), process=False)

    assert response.status_code == 202
    assert response.json() == {"event_id": "evt-1", "duplicate": False}
    assert len(queries) == 1  # one INSERT of the event: no ticket, run, audit entry or read in the request
    stored = WebhookEvent.objects.get()
    assert (stored.event_id, stored.payload["id"], stored.processed_at, stored.ticket) == ("evt-1", "evt-1", None, None)
    assert not Ticket.objects.exists() and not AgentRun.objects.exists()
    assert commit_callbacks_run() == 1  # the message goes out once the INSERT has committed
    messages = queued_task_messages(broker)
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [
        ("agent.tasks.zendesk_event_process_task", f"({stored.pk},)")
    ]


def test_it_creates_a_ticket_and_enqueues_one_run_when_a_worker_applies_the_event(post_webhook, broker) -> None:
    link = TenantLinkFactory(organization_id="360001", tenant_id="acme")
    workflow = WorkflowFactory(match_tags=["stale_cache"], phase="autonomous")
    post_webhook(zendesk_event(), process=False)
    commit_callbacks_run()

    assert webhook_events_process() == ["run started"]

    ticket = Ticket.objects.get()
    assert ticket.external_id == "35436"
    assert ticket.requester_id == "9001"  # ids arrive as numbers or strings
    assert ticket.priority == "high"  # enums arrive in upper case
    assert ticket.status == "new"
    assert ticket.tags == ["stale_cache"]
    assert ticket.tenant_link == link
    assert ticket.raw_payload["id"] == "evt-1"
    stored = WebhookEvent.objects.get()
    assert (stored.ticket, stored.handled, stored.processed_at is not None) == (ticket, True, True)
    run = AgentRun.objects.get()
    assert (run.ticket, run.workflow, run.phase, run.status) == (ticket, workflow, "autonomous", "queued")
    messages = queued_task_messages(broker)
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [
        ("agent.tasks.agent_run_advance_task", f"({run.pk}, '{run.dispatch_token}')")
    ]
    assert AuditEvent.objects.filter(verb="ticket.created", object_id=str(ticket.pk)).exists()


def test_it_applies_an_event_once_however_often_its_message_is_delivered(post_webhook, broker) -> None:
    post_webhook(zendesk_event())
    stored = WebhookEvent.objects.get()

    assert zendesk_event_process_task.apply(args=(stored.pk,), throw=True).get() == "already processed"
    assert zendesk_event_process_task.apply(args=(stored.pk + 1000,), throw=True).get() == "already processed"
    commit_callbacks_run()

    assert Ticket.objects.count() == 1
    assert AgentRun.objects.count() == 1
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.agent_run_advance_task"]


def test_it_answers_a_redelivery_as_a_duplicate_and_stores_and_sends_nothing(post_webhook, broker) -> None:
    first = post_webhook(zendesk_event())
    with CaptureQueriesContext(connection) as queries:
        second = post_webhook(zendesk_event(subject="changed on redelivery"), process=False)

    assert second.status_code == 202
    assert (first.json()["duplicate"], second.json()) == (False, {"event_id": "evt-1", "duplicate": True})
    assert len(queries) == 1
    assert commit_callbacks_run() == 0
    assert Ticket.objects.get().subject == "Dashboard shows stale data"
    assert WebhookEvent.objects.count() == 1
    assert AgentRun.objects.count() == 1
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.agent_run_advance_task"]


def test_it_starts_no_run_for_a_second_created_event_of_the_same_ticket(post_webhook, broker) -> None:
    post_webhook(zendesk_event(event_id="evt-1"))
    post_webhook(zendesk_event(event_id="evt-2"))
    assert WebhookEvent.objects.filter(processed_at__isnull=False).count() == 2
    assert AgentRun.objects.count() == 1
    assert len(queued_task_messages(broker)) == 1


def _at_once(count: int, work: Callable[[], object]) -> list[object]:
    """Run `work` in `count` threads released together, each on its own database connection."""
    barrier = threading.Barrier(count)
    answers: list[object] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            answers.append(work())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return answers


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_event_ticket_run_and_message_each_under_concurrent_redelivery(broker) -> None:
    body = json.dumps(zendesk_event(event_id="evt-concurrent")).encode()
    headers = signed_headers(body)

    responses = _at_once(
        8, lambda: Client().post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)
    )

    assert [r.status_code for r in responses] == [202] * 8
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 7
    assert WebhookEvent.objects.count() == 1
    messages = queued_task_messages(broker)
    assert [m["headers"]["task"] for m in messages] == ["agent.tasks.zendesk_event_process_task"]
    # The one message, delivered to eight workers at once (a redelivery, the sweep's copy): applied once.
    event_pk = WebhookEvent.objects.get().pk
    broker.flushdb()
    answers = _at_once(8, lambda: zendesk_event_process_task.apply(args=(event_pk,), throw=True).get())

    assert sorted(answers) == ["already processed"] * 7 + ["run started"]
    assert Ticket.objects.count() == 1
    assert AgentRun.objects.count() == 1
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.agent_run_advance_task"]


def test_it_appends_comments_once_and_starts_no_run(post_webhook, broker) -> None:
    post_webhook(zendesk_event())
    broker.flushdb()
    comment_event = zendesk_event(event_id="evt-c1", event_type="zen:event-type:ticket.comment_added")
    comment_event["event"] = {
        "comment": {"id": 777, "body": "Still broken.", "is_public": True, "author": {"id": "9001", "is_staff": False}}
    }
    staff_event = zendesk_event(event_id="evt-c2", event_type="zen:event-type:ticket.comment_added")
    staff_event["event"] = {
        "comment": {"id": "778", "body": "Looking.", "is_public": False, "author": {"id": 5, "is_staff": True}}
    }
    assert post_webhook(comment_event).status_code == 202
    assert post_webhook(staff_event).status_code == 202
    assert post_webhook(comment_event).json()["duplicate"] is True

    comments = list(TicketComment.objects.values_list("external_id", "body", "public", "author_kind"))
    assert comments == [("777", "Still broken.", True, "customer"), ("778", "Looking.", False, "human")]
    assert AgentRun.objects.count() == 1
    assert queued_task_messages(broker) == []


def test_it_creates_the_ticket_from_a_comment_that_arrives_first(post_webhook) -> None:
    event = zendesk_event(event_type="zen:event-type:ticket.comment_added")
    event["event"] = {"comment": {"id": 1, "body": "Hello", "is_public": True}}
    assert post_webhook(event).status_code == 202
    assert Ticket.objects.get().comments.count() == 1
    assert not AgentRun.objects.exists()


def test_it_applies_a_status_change_and_ignores_an_older_snapshot(post_webhook) -> None:
    post_webhook(zendesk_event())
    solved = zendesk_event(
        event_id="evt-s",
        event_type="zen:event-type:ticket.status_changed",
        status="SOLVED",
        updated_at="2026-11-23T11:00:00Z",
    )
    stale = zendesk_event(
        event_id="evt-old",
        event_type="zen:event-type:ticket.priority_changed",
        status="OPEN",
        priority="LOW",
        updated_at="2026-11-23T10:30:00Z",
    )
    assert post_webhook(solved).status_code == 202
    assert post_webhook(stale).status_code == 202
    ticket = Ticket.objects.get()
    assert (ticket.status, ticket.priority) == ("solved", "high")
    assert ticket.solved_at is not None
    assert AuditEvent.objects.filter(verb="ticket.status_changed", actor_kind="webhook").count() == 1


def test_it_stores_an_unknown_event_type_without_a_run(post_webhook, broker) -> None:
    event = {"id": "evt-u", "type": "zen:event-type:user.active_changed", "detail": {"id": "6596848315901"}}
    response = post_webhook(event)
    assert response.status_code == 202
    assert response.json() == {"event_id": "evt-u", "duplicate": False}
    stored = WebhookEvent.objects.get()
    assert (stored.event_type, stored.handled, stored.payload) == ("zen:event-type:user.active_changed", False, event)
    assert stored.processed_at is not None
    assert not Ticket.objects.exists()
    assert queued_task_messages(broker) == []


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda body, headers: (body.replace(b"stale", b"fresh"), headers), SIGNATURE_INVALID),
        (lambda body, headers: (body, signed_headers(body, secret="wrong-secret")), SIGNATURE_INVALID),
        (lambda body, headers: (body, {}), SIGNATURE_MISSING),
        (
            lambda body, headers: (body, {"X-Zendesk-Webhook-Signature": headers["X-Zendesk-Webhook-Signature"]}),
            SIGNATURE_MISSING,
        ),
        (
            lambda body, headers: (
                body,
                signed_headers(body, timestamp=(timezone.now() - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")),
            ),
            TIMESTAMP_STALE,
        ),
        (lambda body, headers: (body, signed_headers(body, timestamp="not-a-time")), TIMESTAMP_MALFORMED),
    ],
)
def test_it_answers_401_and_stores_nothing_when_the_signature_fails(post_webhook, broker, tamper, message) -> None:
    body = json.dumps(zendesk_event()).encode()
    body, headers = tamper(body, signed_headers(body))
    response = post_webhook(body, headers=headers, process=False)
    assert response.status_code == 401
    assert response.json()["detail"] == message
    assert commit_callbacks_run() == 0
    assert queued_task_messages(broker) == []
    assert _nothing_stored()


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        (b"{not json", BODY_NOT_JSON, ""),
        (b"\xff\xfe", BODY_NOT_JSON, ""),
        (b"[1, 2]", BODY_WRONG_SHAPE, ""),
        (json.dumps({"type": "zen:event-type:ticket.created"}).encode(), BODY_WRONG_SHAPE, "id"),
        (json.dumps(zendesk_event(ticket_id={"nested": 1})).encode(), BODY_WRONG_SHAPE, "detail.id"),
        (json.dumps(zendesk_event(status="EXPLODED")).encode(), BODY_WRONG_SHAPE, "detail.status"),
        (json.dumps(zendesk_event(tags="not-a-list")).encode(), BODY_WRONG_SHAPE, "detail.tags"),
        (
            json.dumps({**zendesk_event(event_type="zen:event-type:ticket.comment_added"), "event": {}}).encode(),
            BODY_WRONG_SHAPE,
            "event.comment",
        ),
    ],
)
def test_it_answers_400_with_a_json_error_and_stores_nothing(post_webhook, body, message, field) -> None:
    response = post_webhook(body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["detail"] == message
    assert field in [error["field"] for error in payload["errors"]]
    assert _nothing_stored()


def test_it_answers_413_for_a_body_over_one_mebibyte(post_webhook) -> None:
    event = zendesk_event(description="x" * (1024 * 1024))
    response = post_webhook(event)
    assert response.status_code == 413
    assert response.json()["detail"] == BODY_TOO_LARGE.format(limit=1024 * 1024)
    assert _nothing_stored()


def test_it_accepts_only_post(anonymous) -> None:
    assert anonymous.get(WEBHOOK_URL).status_code == 405
