"""Every body gets a documented answer: Zendesk's nulls are accepted; what cannot be stored is refused with 400
naming the field, before anything is stored; a broker outage never costs the sender a 5xx."""

from __future__ import annotations

import json

import pytest

from agent.models import AgentRun
from agent.services.intake import zendesk_events_redispatch
from agentconsole.jsonlimits import (
    BODY_UNSAFE,
    HAS_LONE_SURROGATE,
    HAS_NUL,
    NESTED_TOO_DEEP,
    NUMBER_OUT_OF_RANGE,
)
from audit.models import AuditEvent
from tests.factories import WorkflowFactory
from tests.support import commit_callbacks_run, queued_task_messages, zendesk_event
from tickets.models import Ticket, WebhookEvent
from tickets.services.webhooks import EVENT_ON_CLOSED_TICKET
from tickets.zendesk_webhook import BODY_NOT_JSON, BODY_WRONG_SHAPE, SUBJECT_MAX_CHARS

pytestmark = pytest.mark.django_db


def _nothing_stored() -> bool:
    return not WebhookEvent.objects.exists() and not Ticket.objects.exists() and not AgentRun.objects.exists()


def _body(**detail: object) -> bytes:
    return json.dumps(zendesk_event(**detail)).encode()


NULLABLE_DETAIL = [
    "subject",
    "description",
    "requester_id",
    "organization_id",
    "group_id",
    "status",
    "priority",
    "tags",
    "created_at",
    "updated_at",
]


@pytest.mark.parametrize("field", NULLABLE_DETAIL)
def test_it_accepts_null_wherever_zendesk_sends_it(post_webhook, field) -> None:
    response = post_webhook(zendesk_event(**{field: None}))

    assert response.status_code == 202, response.content
    ticket = Ticket.objects.get()
    assert ticket.priority == ("" if field == "priority" else "high")  # null is Zendesk's "no priority"
    assert ticket.status == "new"


def test_it_accepts_null_in_the_envelope_and_the_comment(post_webhook) -> None:
    event = zendesk_event(event_type="zen:event-type:ticket.comment_added")
    event.update({"subject": None, "time": None, "account_id": None})
    event["event"] = {"comment": {"id": 7, "body": None, "is_public": None, "author": None}}

    response = post_webhook(event)

    assert response.status_code == 202, response.content
    comment = Ticket.objects.get().comments.get()
    assert (comment.body, comment.public, comment.author_kind) == ("", False, "customer")


def test_it_keeps_the_start_of_an_over_long_subject(post_webhook) -> None:
    subject = "s" * (SUBJECT_MAX_CHARS + 1)
    assert post_webhook(zendesk_event(subject=subject)).status_code == 202
    ticket = Ticket.objects.get()
    assert len(ticket.subject) == SUBJECT_MAX_CHARS
    assert ticket.subject.endswith("\u2026")
    assert ticket.raw_payload["detail"]["subject"] == subject


@pytest.mark.parametrize(
    ("body", "message", "field", "problem"),
    [
        pytest.param(_body(subject="a\u0000b"), BODY_UNSAFE, "detail.subject", HAS_NUL, id="nul"),
        pytest.param(
            _body(description="x").replace(b'"x"', b'"\\ud800"'),
            BODY_UNSAFE,
            "detail.description",
            HAS_LONE_SURROGATE,
            id="lone-surrogate",
        ),
        pytest.param(_body(tags=["ok", "bad\u0000"]), BODY_UNSAFE, "detail.tags.1", HAS_NUL, id="nul-in-a-list"),
        pytest.param(
            json.dumps({**zendesk_event(), "extra": {"a\u0000": 1}}).encode(),
            BODY_UNSAFE,
            "extra",
            f"a key {HAS_NUL}",
            id="nul-in-a-key",
        ),
        pytest.param(
            _body(requester_id=1).replace(b'"requester_id": 1', b'"requester_id": ' + b"9" * 5000),
            BODY_UNSAFE,
            "detail.requester_id",
            NUMBER_OUT_OF_RANGE,
            id="5000-digit-integer",
        ),
        pytest.param(
            _body(requester_id=2**63), BODY_UNSAFE, "detail.requester_id", NUMBER_OUT_OF_RANGE, id="over-bigint"
        ),
        pytest.param(
            _body(requester_id=1).replace(b'"requester_id": 1', b'"requester_id": NaN'),
            BODY_UNSAFE,
            "detail.requester_id",
            NUMBER_OUT_OF_RANGE,
            id="nan",
        ),
        pytest.param(
            _body(requester_id=1).replace(b'"requester_id": 1', b'"requester_id": 1e999'),
            BODY_UNSAFE,
            "detail.requester_id",
            NUMBER_OUT_OF_RANGE,
            id="infinite-float",
        ),
        pytest.param(
            b'{"id": "e", "type": "t", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            BODY_UNSAFE,
            "",
            NESTED_TOO_DEEP.format(limit=32),
            id="100000-deep",
        ),
        pytest.param(
            json.dumps({**zendesk_event(), "extra": json.loads("[" * 40 + "]" * 40)}).encode(),
            BODY_UNSAFE,
            "extra" + ".0" * 31,
            NESTED_TOO_DEEP.format(limit=32),
            id="40-deep",
        ),
        pytest.param(_body(updated_at="2026-11-23T10:00:00"), BODY_WRONG_SHAPE, "detail.updated_at", None, id="naive"),
        pytest.param(
            _body(created_at="0001-01-01T00:00:00+01:00"), BODY_WRONG_SHAPE, "detail.created_at", None, id="year-1"
        ),
        pytest.param(
            _body(created_at="9999-12-31T23:59:59-01:00"), BODY_WRONG_SHAPE, "detail.created_at", None, id="year-9999"
        ),
        pytest.param(
            json.dumps({**zendesk_event(), "time": "2026-11-23T10:00:00"}).encode(),
            BODY_WRONG_SHAPE,
            "time",
            None,
            id="naive-envelope-time",
        ),
        pytest.param(_body(ticket_id="9" * 65), BODY_WRONG_SHAPE, "detail.id", None, id="over-long-id"),
        pytest.param(_body(tags=["t" * 201]), BODY_WRONG_SHAPE, "detail.tags.0", None, id="over-long-tag"),
        pytest.param(b'{"id": "e"} trailing', BODY_NOT_JSON, "", None, id="trailing-garbage"),
    ],
)
def test_it_refuses_what_it_cannot_store_with_400_naming_the_field(post_webhook, body, message, field, problem):
    response = post_webhook(body)

    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"] == message
    assert field in [error["field"] for error in payload["errors"]], payload
    if problem:
        assert problem in [error["message"] for error in payload["errors"]]
    assert _nothing_stored()


def test_it_refuses_a_naive_time_after_an_aware_one_and_keeps_the_first(post_webhook) -> None:
    assert post_webhook(zendesk_event()).status_code == 202
    later = zendesk_event(
        event_id="evt-naive", event_type="zen:event-type:ticket.priority_changed", updated_at="2026-11-23T11:00:00"
    )

    assert post_webhook(later).status_code == 400
    assert WebhookEvent.objects.count() == 1


def test_it_stores_a_status_change_on_a_closed_ticket_as_ignored(post_webhook) -> None:
    assert post_webhook(zendesk_event(status="CLOSED")).status_code == 202
    reopened = zendesk_event(
        event_id="evt-reopen",
        event_type="zen:event-type:ticket.status_changed",
        status="OPEN",
        subject="Changed after closing",
        updated_at="2026-11-23T12:00:00Z",
    )
    audit_before = AuditEvent.objects.count()

    response = post_webhook(reopened)

    assert response.status_code == 202
    assert response.json() == {"event_id": "evt-reopen", "duplicate": False}
    ticket = Ticket.objects.get()
    assert (ticket.status, ticket.subject) == ("closed", "Dashboard shows stale data")
    stored = WebhookEvent.objects.get(event_id="evt-reopen")
    assert (stored.ticket, stored.handled, stored.ignored_reason) == (ticket, False, EVENT_ON_CLOSED_TICKET)
    assert stored.processed_at is not None
    assert AuditEvent.objects.count() == audit_before
    again = post_webhook(reopened)  # a redelivery stores and changes nothing
    assert (again.status_code, again.json()["duplicate"]) == (202, True)
    assert WebhookEvent.objects.count() == 2


def test_it_answers_202_when_the_broker_is_down_and_the_sweep_sends_the_event_later(
    post_webhook, broker_unreachable, broker
) -> None:
    WorkflowFactory(match_tags=["stale_cache"])
    response = post_webhook(zendesk_event(), process=False)

    assert response.status_code == 202
    assert commit_callbacks_run() == 1  # the send ran, failed, and was logged
    assert queued_task_messages(broker) == []
    stored = WebhookEvent.objects.get()
    assert stored.processed_at is None and not Ticket.objects.exists()
    assert zendesk_events_redispatch() == []  # not stale yet: its message may only be slow
