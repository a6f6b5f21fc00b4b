"""Property: whatever a sender posts, the webhook answers 202, 400, 401 or 413 — never a 5xx — and a refused body
leaves nothing stored. Generated bodies go through the real test client, signature check and PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import WEBHOOK_URL, signed_headers, zendesk_event
from tickets.models import Ticket, TicketComment, WebhookEvent

pytestmark = pytest.mark.django_db

EXAMPLES = 2_000
BODY_LIMIT = 4096  # small, so bodies over it are cheap to generate

TYPES = [
    "zen:event-type:ticket.created",
    "zen:event-type:ticket.comment_added",
    "zen:event-type:ticket.status_changed",
    "zen:event-type:ticket.priority_changed",
    "zen:event-type:ticket.tags_changed",
    "zen:event-type:user.created",
]

texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, exclude_categories=[]), max_size=20),  # NUL and lone surrogates
    st.sampled_from(["", "0", " ", "NEW", "Closed", "urgent", "\u0000", "\ud800", "x" * 600, "9" * 70]),
)
times = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(["2026-11-23T10:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "nope"]),
    st.integers(min_value=-(2**70), max_value=2**70),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 35436, 2**63 - 1, 2**63]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(scalars, times, json_values)


@st.composite
def zendesk_like(draw: st.DrawFn) -> bytes:
    """Mostly Zendesk's shape with hostile values in random fields, sometimes anything at all."""
    kind = draw(st.sampled_from(["event", "event", "event", "json", "bytes", "deep", "bignum"]))
    if kind == "json":
        return json.dumps(draw(json_values), ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=20, max_value=3000))
        return b'{"id": "d", "type": "t", "detail": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bignum":
        return b'{"id": "b", "type": "t", "detail": {"id": ' + b"7" * draw(st.integers(15, 5000)) + b"}}"
    event = zendesk_event(
        event_id=draw(st.sampled_from(["evt-a", "evt-b"]) | texts),
        event_type=draw(st.sampled_from(TYPES) | texts),
        ticket_id=draw(st.sampled_from(["35436", 35437, "0"]) | scalars),
    )
    detail = event["detail"]
    for name in draw(st.lists(st.sampled_from([*detail, "extra"]), max_size=4, unique=True)):
        detail[name] = draw(field_values)
    for name in draw(st.lists(st.sampled_from(["subject", "time", "account_id", "event", "detail"]), max_size=2)):
        event[name] = draw(field_values)
    if event["type"] == "zen:event-type:ticket.comment_added" and draw(st.booleans()):
        event["event"] = {
            "comment": {
                "id": draw(scalars),
                "body": draw(texts | st.none()),
                "is_public": draw(st.none() | st.booleans() | texts),
                "author": draw(st.none() | st.fixed_dictionaries({"id": scalars, "is_staff": scalars})),
            }
        }
    if draw(st.integers(0, 30)) == 0:
        event["padding"] = "p" * BODY_LIMIT
    # Hypothesis text can hold lone surrogates: send them as JSON escapes, as a hostile sender would.
    return json.dumps(event, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@pytest.fixture
def small_body_limit(settings):
    settings.ZENDESK_WEBHOOK_MAX_BODY_BYTES = BODY_LIMIT


@pytest.fixture
def quiet_request_log():
    # Django logs every 4xx as a warning: two thousand of them cost more than the requests.
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a 5xx is still logged, and fails the test anyway
    yield
    logger.setLevel(level)


def _row_counts() -> tuple[int, ...]:
    tables = [model._meta.db_table for model in (WebhookEvent, Ticket, TicketComment)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in tables))  # noqa: S608
        return tuple(cursor.fetchone())


def test_it_answers_every_generated_body_with_202_400_401_or_413(small_body_limit, quiet_request_log) -> None:
    client = Client()
    answers: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=zendesk_like(), signing=st.sampled_from(["signed"] * 8 + ["tampered", "unsigned"]))
    def post(body: bytes, signing: str) -> None:
        headers = signed_headers(body)
        if signing == "tampered":
            headers = signed_headers(body + b" ")
        elif signing == "unsigned":
            headers = {}
        before = _row_counts()
        response = client.post(WEBHOOK_URL, data=body, content_type="application/json", headers=headers)
        answers[response.status_code] += 1
        assert response.status_code in {202, 400, 401, 413}, (response.status_code, body[:300], response.content)
        assert response["Content-Type"].startswith("application/json")
        if response.status_code != 202:
            assert _row_counts() == before, "a refused body left rows behind"

    post()

    assert sum(answers.values()) >= EXAMPLES
    # The generator reaches every answer, or the property says little.
    assert {202, 400, 401, 413} <= set(answers), answers
