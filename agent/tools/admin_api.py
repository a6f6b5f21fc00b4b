"""The company's internal Admin API (one module for that external system).

Generic over the company's operations (the effect contracts say which to call): the configured auth scheme, a
timeout, and retries of transient failures (timeouts, connection errors, 5xx, 429) by tenacity with capped
exponential backoff and jitter, or the server's Retry-After. Writes carry an idempotency header, the same key on
every retry, so a retried write has one effect. Successful bodies are checked against the operation's declared
response schema; a body of another shape comes back as an UNEXPECTED_RESPONSE observation naming the keys expected
and the keys received.

No method raises: each returns an ApiReply or the Observation the model should see.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result

from agent.tools.base import ErrorType, Observation

logger = logging.getLogger(__name__)

UNREACHABLE = "The Admin API could not be reached ({method} {path}): {error}. Tried {attempts} time(s)."
TIMED_OUT = "The Admin API did not answer {method} {path} within {timeout:g}s. Tried {attempts} time(s)."
SERVER_ERROR = "The Admin API answered {method} {path} with HTTP {status}{detail}. Tried {attempts} time(s)."
RATE_LIMITED_LONG = (
    "The Admin API is rate limiting {method} {path} (HTTP 429) and asks to wait {retry_after:g}s; try again after that."
)
REFUSED = "The Admin API refused {method} {path} (HTTP {status}, {code}): {message}"
NOT_FOUND = "The Admin API found nothing at {method} {path} ({code}): {message}"
UNAUTHORIZED = (
    "The Admin API rejected the console's credentials (HTTP {status}); an operator must check ADMIN_API_AUTH and "
    "its secret (ADMIN_API_TOKEN, ADMIN_API_KEY or the OAuth2 client)."
)
UNEXPECTED_SHAPE = (
    "The Admin API answered {method} {path} in an unexpected shape. Expected an object with keys {expected}; "
    "got {received}. Problems: {problems}."
)
REDIRECTED = (
    "{method} {path} answered {status}, a redirect to {location}. Redirects are not followed; check ADMIN_API_URL "
    "and the OpenAPI document's paths."
)
NOT_JSON = "The Admin API answered {method} {path} with HTTP {status} and a body that is not JSON."
CLIENT_CRASHED = "The Admin API call {method} {path} failed unexpectedly: {error}"
OUTCOME_UNKNOWN = (
    " The request reached the Admin API (or may have), so the write may have taken effect: do not repeat it; its "
    "outcome is checked by re-reading state."
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Failures that prove the request never reached the server: nothing can have happened. Any other transport failure
# (a read timeout, a dropped connection) may come after the server acted.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
            httpx.LocalProtocolError, httpx.ProxyError)  # fmt: skip

# Waiting longer than this inside one tool call holds up the agent's worker: past it we hand the 429 back to the
# model (retryable, with the server's Retry-After) instead of sleeping.
RETRY_AFTER_CAP_SECONDS = 5.0
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 2.0


@dataclass(frozen=True)
class ApiReply:
    body: Any
    status: int
    attempts: int
    replayed: bool  # the API answered from its idempotency memory: no second effect happened

    def meta(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "replayed": self.replayed}


@dataclass(frozen=True)
class _Attempt:
    """One attempt's outcome: a definite response, or a failure, and whether trying again could help."""

    response: httpx.Response | None = None
    failure: Observation | None = None
    transient: bool = False
    retry_after: float | None = None


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3). None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # isdigit alone passes "\u00b2", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _expected_keys(schema: dict[str, Any]) -> list[str]:
    return list(schema.get("required") or schema.get("properties") or [])


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from the API's error body — `{"error": {"code", "message"}}`, RFC 9457 problem details or a
    flat `{"code", "message"}` — or placeholders when the body is none of these."""
    try:
        payload = response.json()
    except ValueError:
        return "unknown_error", response.text[:200] or response.reason_phrase
    if not isinstance(payload, dict):
        return "unknown_error", str(payload)[:200]
    error = payload.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or "unknown_error"), str(error.get("message") or "")
    code = payload.get("code") or payload.get("type") or (error if isinstance(error, str) else None)
    message = payload.get("message") or payload.get("detail") or payload.get("title")
    if code or message:
        return str(code or "unknown_error"), str(message or "")[:500]
    return "unknown_error", str(payload)[:200]


def _shape_problems(payload: Any, schema: dict[str, Any]) -> list[str]:
    from openapi_schema_validator import OAS31Validator

    validator = OAS31Validator(schema)  # 3.0 documents' `nullable` was made JSON Schema at import
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(body)'}: {error.message[:200]}"
        for error in sorted(validator.iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))[:5]
    ]


class AdminApiClient:
    def __init__(
        self,
        *,
        base_url: str,
        token: str = "",
        timeout: float,
        auth: httpx.Auth | None = None,
        max_attempts: int,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        retry_after_cap: float = RETRY_AFTER_CAP_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "agent-console"}
        if token and auth is None:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, auth=auth)
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_after_cap = retry_after_cap
        self._sleep = sleep

    def __enter__(self) -> AdminApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        idempotency_header: str | None = "Idempotency-Key",
        response_schema: dict[str, Any] | None = None,
    ) -> ApiReply | Observation:
        """Send with retries and check the answer against `response_schema` (the operation's 2xx JSON schema).
        A write gets `idempotency_header` with `idempotency_key`, or one new key per call, the same on every retry;
        without a header name nothing is sent and a write's retries are its own risk (the contract said so)."""
        method = method.upper()
        headers: dict[str, str] = {}
        write = method in WRITE_METHODS
        if write and idempotency_header:
            headers[idempotency_header] = idempotency_key or str(uuid.uuid4())
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        try:
            sent = self._send_with_retries(method, path, params, body, headers)
            if isinstance(sent, Observation):
                meta = dict(sent.meta)
                maybe_received = meta.pop("maybe_received", False)
                sent = Observation.failure(sent.error_type, sent.message, retryable=sent.retryable, **meta)
                return _uncertain(sent) if write and maybe_received else sent
            response, attempts = sent
            answer = self._interpret(method, path, response_schema, response, attempts)
            if write and isinstance(answer, Observation) and response.status_code < 400:
                # A 2xx we cannot read (the write happened, its result is unknown) or a redirect (it may have)
                return _uncertain(answer)
            return answer
        except Exception as exc:  # the client's promise: never raise into the tool
            logger.exception("Admin API call %s %s crashed", method, path)
            return Observation.failure(
                ErrorType.INTERNAL, CLIENT_CRASHED.format(method=method, path=path, error=type(exc).__name__)
            )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter": never zero, never in lockstep

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        body: dict[str, Any] | None,
        headers: dict[str, str],
        attempt: int,
        received: list[bool],
    ) -> _Attempt:
        """One try. `received` carries, across attempts, whether any may have reached the server undecided."""
        where = {"method": method, "path": path}
        try:
            response = self._client.request(method, path, params=params or None, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            received[0] = received[0] or not isinstance(exc, NOT_SENT)
            message = TIMED_OUT.format(**where, timeout=self._timeout, attempts=attempt)
            failure = Observation.failure(
                ErrorType.TIMEOUT, message, retryable=True, attempts=attempt, maybe_received=received[0]
            )
            return _Attempt(failure=failure, transient=True)
        except httpx.TransportError as exc:
            received[0] = received[0] or not isinstance(exc, NOT_SENT)
            message = UNREACHABLE.format(**where, error=type(exc).__name__, attempts=attempt)
            failure = Observation.failure(
                ErrorType.UPSTREAM, message, retryable=True, attempts=attempt, maybe_received=received[0]
            )
            return _Attempt(failure=failure, transient=True)
        if response.status_code != 429 and response.status_code < 500:
            return _Attempt(response=response)
        # A 5xx may come after the server acted; a 429 is a refusal before it did anything.
        received[0] = received[0] or response.status_code >= 500
        code, message = _error_detail(response)
        detail = f" ({code}: {message})" if message else ""
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        meta = {
            "status_code": response.status_code,
            "error_code": code,
            "attempts": attempt,
            "retry_after_seconds": wait,
            "maybe_received": received[0],
        }
        text = SERVER_ERROR.format(**where, status=response.status_code, detail=detail, attempts=attempt)
        if wait is not None and wait > self._retry_after_cap and response.status_code == 429:
            text = RATE_LIMITED_LONG.format(**where, retry_after=wait)
        return _Attempt(failure=Observation.failure(ErrorType.UPSTREAM, text, retryable=True, **meta),
                        transient=True, retry_after=wait)  # fmt: skip

    def _send_with_retries(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[httpx.Response, int] | Observation:
        received = [False]  # whether any attempt may have reached the server without a definite answer

        def wait(state: RetryCallState) -> float:
            hint = state.outcome.result().retry_after if state.outcome else None
            return hint if hint is not None else self._backoff(state.attempt_number)

        def give_up(state: RetryCallState) -> bool:
            last = state.outcome.result() if state.outcome and not state.outcome.failed else None
            # A Retry-After longer than the cap is not slept through: the worker is not held, the caller comes back.
            too_long = last is not None and last.retry_after is not None and last.retry_after > self._retry_after_cap
            return too_long or state.attempt_number >= self._max_attempts

        def before_sleep(state: RetryCallState) -> None:
            logger.info("Admin API %s %s attempt %d failed; retrying", method, path, state.attempt_number)

        retrying = Retrying(
            stop=give_up,
            wait=wait,
            retry=retry_if_result(lambda outcome: outcome.transient),
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),
            reraise=True,
        )
        attempt = 0

        def once() -> _Attempt:
            nonlocal attempt
            attempt += 1
            return self._attempt(method, path, params, body, headers, attempt, received)

        outcome: _Attempt = retrying(once)
        if outcome.response is not None:
            return outcome.response, attempt
        assert outcome.failure is not None
        return outcome.failure

    def _interpret(
        self, method: str, path: str, schema: dict[str, Any] | None, response: httpx.Response, attempts: int
    ) -> ApiReply | Observation:
        status = response.status_code
        meta = {"status_code": status, "attempts": attempts}
        if status == 401:
            # Our credentials, not the model's request: nothing the model can change.
            return Observation.failure(ErrorType.UPSTREAM, UNAUTHORIZED.format(status=status), **meta)
        if status >= 400:
            code, message = _error_detail(response)
            template, error_type = (NOT_FOUND, ErrorType.NOT_FOUND) if status == 404 else (REFUSED, ErrorType.REFUSED)
            return Observation.failure(
                error_type,
                template.format(method=method, path=path, status=status, code=code, message=message),
                error_code=code,
                **meta,
            )
        if status >= 300:
            # Never followed: the credentials go to the configured Admin API only. A write redirected may have been
            # done (a 303 after a POST), so the caller treats its outcome as unknown and re-reads state.
            location = response.headers.get("Location", "")[:200] or "(no Location)"
            return Observation.failure(
                ErrorType.UNEXPECTED_RESPONSE,
                REDIRECTED.format(method=method, path=path, status=status, location=location),
                **meta,
            )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        if not response.content and schema is None:
            return ApiReply(body=None, status=status, attempts=attempts, replayed=replayed)
        try:
            payload = response.json()
        except ValueError:
            return Observation.failure(
                ErrorType.UNEXPECTED_RESPONSE, NOT_JSON.format(method=method, path=path, status=status), **meta
            )
        problems = _shape_problems(payload, schema) if schema else []
        if problems:
            received = f"keys {', '.join(payload)}" if isinstance(payload, dict) else f"a JSON {type(payload).__name__}"
            expected = _expected_keys(schema or {})
            return Observation.failure(
                ErrorType.UNEXPECTED_RESPONSE,
                UNEXPECTED_SHAPE.format(
                    method=method,
                    path=path,
                    expected=", ".join(expected) or "(see the OpenAPI document)",
                    received=received,
                    problems="; ".join(problems),
                ),
                expected_keys=expected,
                received_keys=list(payload) if isinstance(payload, dict) else [],
                **meta,
            )
        return ApiReply(body=payload, status=status, attempts=attempts, replayed=replayed)


def _uncertain(failure: Observation) -> Observation:
    return Observation.failure(failure.error_type, failure.message + OUTCOME_UNKNOWN, uncertain=True, **failure.meta)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def path_segment(value: Any) -> str:
    """One URL path segment: a tenant id, e-mail or config key can never reach another path."""
    return quote(str(value), safe="@")
