"""The Admin API client at its HTTP boundary: a small local HTTP server stands in for the Admin API."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from agent.catalogue import get_tool
from agent.tools.admin_api import AdminApiClient, ApiReply, path_segment, retry_after_seconds
from agent.tools.base import ErrorType, Observation, ToolContext
from tests.http_standin import Scripted, StandIn, serve

TOKEN = "stand-in-token"
TENANT = {
    "tenant_id": "acme",
    "name": "Acme",
    "plan": "growth",
    "status": "active",
    "trial_ends_at": None,
    "cache_version": 4,
    "cache_reset_at": "2026-11-20T09:00:00Z",
}

TENANT_SCHEMA = {
    "type": "object",
    "required": ["tenant_id", "name", "plan", "status", "trial_ends_at", "cache_version", "cache_reset_at"],
    "properties": {"cache_version": {"type": "integer"}, "tenant_id": {"type": "string"}},
}


RESET_SCHEMA = {"type": "object", "required": ["tenant_id", "cache_version", "cache_reset_at"]}


def get_tenant(client: AdminApiClient, tenant: str) -> ApiReply | Observation:
    return client.request("GET", f"/tenants/{tenant}", response_schema=TENANT_SCHEMA)


def reset_cache(client: AdminApiClient, tenant: str, *, idempotency_key: str | None) -> ApiReply | Observation:
    return client.request("POST", f"/tenants/{tenant}/cache/reset", body={}, idempotency_key=idempotency_key,
                          response_schema=RESET_SCHEMA)  # fmt: skip


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    yield from serve(StandIn(fallback=Scripted(599, {"error": {"code": "unscripted"}})), "/admin-api/v1")


def make_client(stand_in: StandIn, **overrides: Any) -> AdminApiClient:
    options: dict[str, Any] = {
        "base_url": stand_in.url,
        "token": TOKEN,
        "timeout": 2.0,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_cap": 0.02,
    }
    return AdminApiClient(**(options | overrides))


def test_it_sends_a_get_with_the_bearer_token_and_parses_the_body(stand_in: StandIn) -> None:
    stand_in.answer(200, TENANT)

    with make_client(stand_in) as client:
        reply = get_tenant(client, "acme")

    assert isinstance(reply, ApiReply)
    assert reply.body == TENANT
    assert reply.attempts == 1
    [request] = stand_in.requests
    assert request.method == "GET"
    assert request.path == "/admin-api/v1/tenants/acme"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "idempotency-key" not in request.headers


def test_it_posts_json_with_the_given_idempotency_key(stand_in: StandIn) -> None:
    stand_in.answer(
        200,
        {
            "tenant_id": "acme",
            "trial_ends_at": "2026-12-10T00:00:00Z",
            "previous_trial_ends_at": "2026-12-05T00:00:00Z",
        },
        headers={"Idempotent-Replayed": "true"},
    )

    with make_client(stand_in) as client:
        reply = client.request("POST", "/tenants/acme/trial/extend", body={"days": 5}, idempotency_key="action-17")

    assert isinstance(reply, ApiReply)
    assert reply.replayed is True
    assert reply.body["trial_ends_at"] == "2026-12-10T00:00:00Z"
    [request] = stand_in.requests
    assert (request.method, request.path) == ("POST", "/admin-api/v1/tenants/acme/trial/extend")
    assert request.headers["idempotency-key"] == "action-17"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"days": 5}


def test_it_puts_a_config_value_with_the_key_in_one_path_segment(stand_in: StandIn) -> None:
    stand_in.answer(200, {"tenant_id": "acme", "key": "a/b", "value": "300", "previous_value": "60"})

    with make_client(stand_in) as client:
        reply = client.request(
            "PUT",
            f"/tenants/acme/config/{path_segment('a/b')}",
            body={"value": "300", "reason": "why"},
            idempotency_key="k-1",
        )

    assert isinstance(reply, ApiReply)
    [request] = stand_in.requests
    assert (request.method, request.path) == ("PUT", "/admin-api/v1/tenants/acme/config/a%2Fb")
    assert request.json() == {"value": "300", "reason": "why"}


def test_it_retries_a_503_with_the_same_generated_idempotency_key(stand_in: StandIn) -> None:
    stand_in.answer(503, {"error": {"code": "unavailable", "message": "try again"}})
    stand_in.answer(503, {"error": {"code": "unavailable", "message": "try again"}})
    stand_in.answer(200, {"tenant_id": "acme", "cache_version": 5, "cache_reset_at": "2026-11-23T10:00:00Z"})

    with make_client(stand_in) as client:
        reply = reset_cache(client, "acme", idempotency_key=None)

    assert isinstance(reply, ApiReply)
    assert reply.body["cache_version"] == 5
    assert reply.attempts == 3
    keys = {request.headers["idempotency-key"] for request in stand_in.requests}
    assert len(stand_in.requests) == 3
    assert len(keys) == 1
    assert uuid.UUID(keys.pop())


def test_it_uses_a_new_key_for_each_logical_call(stand_in: StandIn) -> None:
    body = {"tenant_id": "acme", "cache_version": 5, "cache_reset_at": "2026-11-23T10:00:00Z"}
    stand_in.answer(200, body)
    stand_in.answer(200, body)

    with make_client(stand_in) as client:
        reset_cache(client, "acme", idempotency_key=None)
        reset_cache(client, "acme", idempotency_key=None)

    first, second = (request.headers["idempotency-key"] for request in stand_in.requests)
    assert first != second


def test_it_backs_off_exponentially_with_jitter_up_to_the_cap(stand_in: StandIn) -> None:
    for _ in range(4):
        stand_in.answer(502, {"error": {"code": "bad_gateway", "message": "upstream"}})
    delays: list[float] = []

    with make_client(stand_in, max_attempts=4, backoff_base=1.0, backoff_cap=1.5, sleep=delays.append) as client:
        get_tenant(client, "acme")

    assert len(delays) == 3
    assert 0.5 <= delays[0] <= 1.0
    assert 0.75 <= delays[1] <= 1.5  # 2.0 capped at 1.5
    assert 0.75 <= delays[2] <= 1.5


def test_it_waits_for_retry_after_on_429(stand_in: StandIn) -> None:
    stand_in.answer(429, {"error": {"code": "rate_limited", "message": "slow down"}}, headers={"Retry-After": "1"})
    stand_in.answer(200, TENANT)

    started = time.monotonic()
    with make_client(stand_in) as client:
        reply = get_tenant(client, "acme")
    elapsed = time.monotonic() - started

    assert isinstance(reply, ApiReply)
    assert reply.attempts == 2
    assert elapsed >= 1.0  # the backoff alone would have waited 0.02s at most


def test_it_returns_a_429_at_once_when_retry_after_is_beyond_the_cap(stand_in: StandIn) -> None:
    stand_in.answer(
        429, {"error": {"code": "rate_limited", "message": "one reset a minute"}}, headers={"Retry-After": "120"}
    )

    with make_client(stand_in) as client:
        observation = reset_cache(client, "acme", idempotency_key="k-2")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.UPSTREAM
    assert observation.retryable is True
    assert observation.meta["retry_after_seconds"] == 120
    assert "120" in observation.message
    assert len(stand_in.requests) == 1


def test_it_reports_exhausted_retries_as_a_retryable_upstream_failure(stand_in: StandIn) -> None:
    for _ in range(3):
        stand_in.answer(500, {"error": {"code": "internal", "message": "database is on fire"}})

    with make_client(stand_in) as client:
        observation = client.request("GET", "/tenants/acme/billing")

    assert isinstance(observation, Observation)
    assert observation.ok is False
    assert observation.error_type == ErrorType.UPSTREAM
    assert observation.retryable is True
    assert "database is on fire" in observation.message
    assert observation.meta["attempts"] == 3
    assert len(stand_in.requests) == 3


def test_it_reports_a_changed_shape_with_expected_and_received_keys(stand_in: StandIn) -> None:
    stand_in.answer(200, {"data": TENANT, "meta": {"api_version": "2"}})

    with make_client(stand_in) as client:
        observation = get_tenant(client, "acme")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.UNEXPECTED_RESPONSE
    assert observation.retryable is False
    assert observation.meta["received_keys"] == ["data", "meta"]
    assert "cache_version" in observation.meta["expected_keys"]
    assert "got keys data, meta" in observation.message
    assert "cache_version" in observation.message
    assert len(stand_in.requests) == 1


def test_it_reports_a_body_that_is_not_json(stand_in: StandIn) -> None:
    stand_in.script.append(Scripted(200, raw=b"<html>maintenance</html>"))

    with make_client(stand_in) as client:
        observation = get_tenant(client, "acme")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.UNEXPECTED_RESPONSE
    assert "not JSON" in observation.message


def test_it_turns_a_4xx_error_into_refused_with_the_api_message(stand_in: StandIn) -> None:
    stand_in.answer(422, {"error": {"code": "invalid_days", "message": "days must be between 1 and 30"}})

    with make_client(stand_in) as client:
        observation = client.request("POST", "/tenants/acme/trial/extend", body={"days": 31}, idempotency_key="k-3")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.REFUSED
    assert observation.retryable is False
    assert observation.meta["error_code"] == "invalid_days"
    assert "days must be between 1 and 30" in observation.message
    assert len(stand_in.requests) == 1


def test_it_turns_a_404_into_not_found(stand_in: StandIn) -> None:
    stand_in.answer(404, {"error": {"code": "user_not_found", "message": "no such user"}})

    with make_client(stand_in) as client:
        observation = client.request("GET", f"/tenants/acme/users/{path_segment('ann@example.com')}")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.NOT_FOUND
    assert "no such user" in observation.message
    assert stand_in.requests[0].path == "/admin-api/v1/tenants/acme/users/ann@example.com"


def test_it_reports_rejected_credentials_as_an_operator_problem(stand_in: StandIn) -> None:
    stand_in.answer(401, {"error": {"code": "unauthorized", "message": "bad token"}})

    with make_client(stand_in, token="wrong") as client:
        observation = get_tenant(client, "acme")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.UPSTREAM
    assert observation.retryable is False
    assert "ADMIN_API_TOKEN" in observation.message


def test_it_times_out_and_retries_then_reports_a_timeout(stand_in: StandIn) -> None:
    stand_in.answer(200, TENANT, delay=1.0)
    stand_in.answer(200, TENANT, delay=1.0)

    with make_client(stand_in, timeout=0.2, max_attempts=2) as client:
        observation = get_tenant(client, "acme")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.TIMEOUT
    assert observation.retryable is True
    assert len(stand_in.requests) == 2


def test_it_reports_an_unreachable_api_as_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there

    client = AdminApiClient(
        base_url=f"http://127.0.0.1:{port}/v1", token=TOKEN, timeout=1.0, max_attempts=2, backoff_base=0.01
    )
    with client:
        observation = get_tenant(client, "acme")

    assert isinstance(observation, Observation)
    assert observation.error_type == ErrorType.UPSTREAM
    assert observation.retryable is True
    assert observation.meta["attempts"] == 2


def test_it_reads_retry_after_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("\u00b2") is None  # a digit to str.isdigit(), not a number to float()
    assert retry_after_seconds(None) is None


def test_it_gives_the_tool_the_changed_shape_as_its_observation(stand_in: StandIn, settings: Any, db: None) -> None:
    settings.ADMIN_API_URL = stand_in.url
    settings.ADMIN_API_TOKEN = TOKEN
    stand_in.answer(200, {"data": TENANT, "meta": {"api_version": "2"}})
    tool = get_tool("reset_tenant_cache")
    assert tool is not None

    observation = tool.invoke({"tenant_id": "acme"}, ToolContext(ticket_id=1, tenant_id="acme"))

    assert observation.ok is False
    assert observation.error_type == ErrorType.UNEXPECTED_RESPONSE
    assert [request.method for request in stand_in.requests] == ["GET"]  # no reset after an unreadable tenant


RESET = {"tenant_id": "acme", "cache_version": 5, "cache_reset_at": "2026-11-23T10:00:00Z"}
REFUSAL = {"error": {"code": "conflict", "message": "not now"}}


@pytest.mark.parametrize(
    ("answers", "uncertain"),
    [
        ([(503, REFUSAL), (503, REFUSAL)], True),  # the server may have acted before failing
        ([(200, {"data": RESET}), None], True),  # it acted; its answer is unreadable
        ([(200, "not json"), None], True),
        ([(503, REFUSAL), (429, REFUSAL)], True),  # the first attempt may have acted
        ([(429, REFUSAL), (429, REFUSAL)], False),  # refused before doing anything
        ([(409, REFUSAL), None], False),  # a definite answer
        ([(503, REFUSAL), (409, REFUSAL)], False),  # same key: the server's last word is the outcome
    ],
)
def test_it_marks_a_write_whose_outcome_is_unknown(stand_in: StandIn, answers, uncertain) -> None:
    for answer in answers:
        if answer is not None:
            status, body = answer
            if body == "not json":
                stand_in.answer(status, raw=b"<html>ok</html>")
            else:
                stand_in.answer(status, body)

    with make_client(stand_in, max_attempts=2) as client:
        observation = reset_cache(client, "acme", idempotency_key="k-1")

    assert isinstance(observation, Observation)
    assert observation.uncertain is uncertain
    assert observation.retryable is (not uncertain and observation.error_type == ErrorType.UPSTREAM)
    assert ("may have taken effect" in observation.message) is uncertain
    assert "maybe_received" not in observation.meta


def test_it_marks_a_timed_out_write_uncertain_but_never_a_read(stand_in: StandIn) -> None:
    stand_in.answer(200, RESET, delay=0.6)
    stand_in.answer(200, TENANT, delay=0.6)

    with make_client(stand_in, timeout=0.2, max_attempts=1) as client:
        write = reset_cache(client, "acme", idempotency_key="k-2")
        read = get_tenant(client, "acme")

    assert (write.error_type, write.uncertain, write.retryable) == (ErrorType.TIMEOUT, True, False)
    assert (read.error_type, read.uncertain, read.retryable) == (ErrorType.TIMEOUT, False, True)


def test_it_knows_a_write_that_never_reached_the_api_did_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with AdminApiClient(base_url=f"http://127.0.0.1:{port}/v1", token=TOKEN, timeout=1.0, max_attempts=2,
                        backoff_base=0.01) as client:  # fmt: skip
        observation = reset_cache(client, "acme", idempotency_key="k-3")

    assert (observation.error_type, observation.uncertain, observation.retryable) == (ErrorType.UPSTREAM, False, True)
