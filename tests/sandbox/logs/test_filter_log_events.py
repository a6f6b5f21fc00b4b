from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.logs import InvalidParameterException, filter_log_events, parse_filter_pattern
from tests.sandbox.factories import LogEventFactory, TenantFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
T0_MS = 1_795_428_000_000  # T0 in epoch milliseconds
GROUP = "/company/app"

MESSAGES = [
    'ERROR cache_error tenant=acme key=dashboard:summary detail="stale entry"',
    "WARN login_failed tenant=acme email=ops@acme.example ip=203.0.113.7",
    "INFO request_completed tenant=acme status=200",
    "error lowercase tenant=acme",
    'ERROR export_failed tenant=acme detail="timeout"',
]


@pytest.fixture
def acme_events() -> list:
    acme = TenantFactory(id="acme")
    return [
        LogEventFactory(tenant=acme, timestamp=T0 + timedelta(minutes=i), message=message)
        for i, message in enumerate(MESSAGES)
    ]


def _messages(pattern: str, **kwargs: object) -> list[str]:
    response = filter_log_events(log_group_name=GROUP, log_stream_names=["acme"], filter_pattern=pattern, **kwargs)
    return [event["message"] for event in response["events"]]


def test_it_answers_in_the_shape_of_boto3(acme_events) -> None:
    response = filter_log_events(log_group_name=GROUP, log_stream_names=["acme"], limit=1)

    assert set(response) == {"events", "searchedLogStreams", "nextToken"}
    assert response["events"] == [
        {
            "logStreamName": "acme",
            "timestamp": T0_MS,
            "message": MESSAGES[0],
            "ingestionTime": T0_MS,
            "eventId": str(acme_events[0].pk),
        }
    ]
    assert response["searchedLogStreams"] == [{"logStreamName": "acme", "searchedCompletely": False}]
    assert isinstance(response["nextToken"], str)


def test_it_leaves_out_the_next_token_on_the_last_page(acme_events) -> None:
    response = filter_log_events(log_group_name=GROUP, log_stream_names=["acme"])

    assert "nextToken" not in response
    assert response["searchedLogStreams"] == [{"logStreamName": "acme", "searchedCompletely": True}]
    assert [event["message"] for event in response["events"]] == MESSAGES


def test_it_matches_everything_with_an_empty_pattern(acme_events) -> None:
    assert _messages("") == MESSAGES
    assert _messages("   ") == MESSAGES


def test_it_requires_every_term(acme_events) -> None:
    assert _messages("ERROR cache_error") == [MESSAGES[0]]
    assert _messages("ERROR tenant=acme") == [MESSAGES[0], MESSAGES[4]]
    assert _messages("ERROR login_failed") == []


def test_it_matches_case_sensitively(acme_events) -> None:
    assert _messages("ERROR") == [MESSAGES[0], MESSAGES[4]]
    assert _messages("lowercase") == [MESSAGES[3]]
    assert _messages("LOWERCASE") == []


def test_it_matches_a_quoted_phrase_as_one_term(acme_events) -> None:
    assert _messages('"stale entry"') == [MESSAGES[0]]
    assert _messages('"entry stale"') == []


def test_it_matches_any_of_the_question_mark_terms(acme_events) -> None:
    assert _messages("?cache_error ?login_failed") == [MESSAGES[0], MESSAGES[1]]
    assert _messages('?"stale entry" ?"status=200"') == [MESSAGES[0], MESSAGES[2]]
    assert _messages("?nothing ?nowhere") == []


def test_it_combines_required_any_and_excluded_terms(acme_events) -> None:
    assert _messages("ERROR -timeout") == [MESSAGES[0]]
    assert _messages("tenant=acme ?ERROR ?WARN -cache_error") == [MESSAGES[1], MESSAGES[4]]


def test_it_searches_only_the_named_streams_of_the_named_group(acme_events) -> None:
    globex = TenantFactory(id="globex")
    LogEventFactory(tenant=globex, timestamp=T0, message="ERROR cache_error tenant=globex")
    LogEventFactory(tenant=acme_events[0].tenant, log_group="/other/group", timestamp=T0, message="ERROR cache_error")

    assert _messages("cache_error") == [MESSAGES[0]]
    both = filter_log_events(log_group_name=GROUP, log_stream_names=["acme", "globex"], filter_pattern="cache_error")
    assert [event["logStreamName"] for event in both["events"]] == ["acme", "globex"]  # by (timestamp, id)
    assert [stream["logStreamName"] for stream in both["searchedLogStreams"]] == ["acme", "globex"]
    assert filter_log_events(log_group_name="/no/such/group", log_stream_names=["acme"])["events"] == []


def test_it_filters_by_inclusive_millisecond_times(acme_events) -> None:
    one_minute = 60_000

    assert _messages("", start_time=T0_MS + one_minute, end_time=T0_MS + 3 * one_minute) == MESSAGES[1:4]
    assert _messages("", start_time=T0_MS + one_minute + 1) == MESSAGES[2:]
    assert _messages("", end_time=T0_MS + one_minute - 1) == MESSAGES[:1]


def test_it_includes_an_event_inside_the_end_millisecond() -> None:
    acme = TenantFactory(id="acme")
    LogEventFactory(tenant=acme, timestamp=T0 + timedelta(microseconds=900), message="late in the millisecond")

    assert _messages("", start_time=T0_MS, end_time=T0_MS) == ["late in the millisecond"]


def test_it_pages_through_every_match_once_in_order() -> None:
    acme = TenantFactory(id="acme")
    # Same-timestamp events too: the token must order by (timestamp, id).
    for i in range(23):
        LogEventFactory(tenant=acme, timestamp=T0 + timedelta(seconds=i // 3), message=f"ERROR n={i:02d}")
        LogEventFactory(tenant=acme, timestamp=T0 + timedelta(seconds=i // 3), message=f"INFO n={i:02d}")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        response = filter_log_events(
            log_group_name=GROUP, log_stream_names=["acme"], filter_pattern="ERROR", limit=5, next_token=token
        )
        seen += [event["message"] for event in response["events"]]
        pages += 1
        token = response.get("nextToken")
        if token is None:
            break

    assert seen == [f"ERROR n={i:02d}" for i in range(23)]
    assert pages == 5


def test_it_refuses_a_token_from_another_query(acme_events) -> None:
    token = filter_log_events(log_group_name=GROUP, log_stream_names=["acme"], limit=1)["nextToken"]

    with pytest.raises(InvalidParameterException):
        filter_log_events(log_group_name=GROUP, log_stream_names=["acme"], filter_pattern="ERROR", next_token=token)
    with pytest.raises(InvalidParameterException):
        filter_log_events(log_group_name=GROUP, log_stream_names=["acme"], next_token="garbage!")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"log_stream_names": []},
        {"log_stream_names": [""]},
        {"log_group_name": ""},
        {"limit": 0},
        {"limit": 10_001},
        {"start_time": "yesterday"},
        {"filter_pattern": '"unterminated'},
        {"filter_pattern": "ERROR ?"},
        {"filter_pattern": '"quoted"tail'},
        {"filter_pattern": "{ $.level = ERROR }"},
        {"filter_pattern": "[ip, user, ...]"},
        {"filter_pattern": "%ERR.R%"},
    ],
)
def test_it_refuses_invalid_parameters(acme_events, kwargs: dict) -> None:
    arguments = {"log_group_name": GROUP, "log_stream_names": ["acme"], **kwargs}

    with pytest.raises(InvalidParameterException):
        filter_log_events(**arguments)


def test_it_parses_the_three_kinds_of_terms() -> None:
    pattern = parse_filter_pattern('ERROR "stale entry" ?a ?"b c" -"d e" -f')

    assert pattern.required == ("ERROR", "stale entry")
    assert pattern.any_of == ("a", "b c")
    assert pattern.excluded == ("d e", "f")
