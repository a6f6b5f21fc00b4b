"""The company's internal Admin API (one module for that external system).

Bearer auth, a timeout, and retries of transient failures (timeouts, connection errors, 5xx, 429) with capped
exponential backoff and jitter. Writes carry an Idempotency-Key, the same one on every retry, so a retried write
has one effect. Successful bodies are validated against the response models below; a body of another shape comes
back as an UNEXPECTED_RESPONSE observation naming the keys expected and the keys received.

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
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from django.conf import settings
from pydantic import BaseModel, ConfigDict, ValidationError

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
    "The Admin API rejected the console's credentials (HTTP {status}); an operator must check ADMIN_API_TOKEN."
)
UNEXPECTED_SHAPE = (
    "The Admin API answered {method} {path} in an unexpected shape. Expected an object with keys {expected}; "
    "got {received}. Problems: {problems}."
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


# --- Response models: what the Admin API promises to answer on 2xx -----------------------------------------------
class ApiBody(BaseModel):
    # Unknown extra keys are tolerated (the API may add fields); a missing or mistyped field is a changed shape.
    model_config = ConfigDict(extra="ignore")


class TenantOut(ApiBody):
    tenant_id: str
    name: str
    plan: str
    status: str
    trial_ends_at: datetime | None
    cache_version: int
    cache_reset_at: datetime | None


class CacheResetOut(ApiBody):
    tenant_id: str
    cache_version: int
    cache_reset_at: datetime


class TrialExtendOut(ApiBody):
    tenant_id: str
    trial_ends_at: datetime
    previous_trial_ends_at: datetime | None


class TenantUserOut(ApiBody):
    tenant_id: str
    email: str
    locked: bool
    failed_logins: int
    locked_at: datetime | None


class TenantConfigOut(ApiBody):
    tenant_id: str
    values: dict[str, Any]


class ConfigSetOut(ApiBody):
    tenant_id: str
    key: str
    value: Any
    previous_value: Any


class BillingOut(ApiBody):
    tenant_id: str
    plan: str
    status: str
    subscription: dict[str, Any] | None
    invoices: list[dict[str, Any]]


BodyT = TypeVar("BodyT", bound=ApiBody)


@dataclass(frozen=True)
class ApiReply(Generic[BodyT]):
    body: BodyT
    status: int
    attempts: int
    replayed: bool  # the API answered from its idempotency memory: no second effect happened

    def meta(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "replayed": self.replayed}


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3). None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _expected_keys(model: type[ApiBody]) -> str:
    return ", ".join(model.model_fields)


def _error_detail(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from the API's error envelope, or placeholders when the body is not one."""
    try:
        payload = response.json()
    except ValueError:
        return "unknown_error", response.text[:200] or response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("code") or "unknown_error"), str(error.get("message") or "")
    return "unknown_error", str(payload)[:200]


class AdminApiClient:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
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

    # --- Endpoints --------------------------------------------------------------------------------------------
    def get_tenant(self, tenant_id: str) -> ApiReply[TenantOut] | Observation:
        return self.request("GET", f"/tenants/{_seg(tenant_id)}", TenantOut)

    def reset_cache(self, tenant_id: str, *, idempotency_key: str | None) -> ApiReply[CacheResetOut] | Observation:
        return self.request(
            "POST", f"/tenants/{_seg(tenant_id)}/cache/reset", CacheResetOut, body={}, idempotency_key=idempotency_key
        )

    def extend_trial(
        self, tenant_id: str, *, days: int, idempotency_key: str | None
    ) -> ApiReply[TrialExtendOut] | Observation:
        return self.request(
            "POST",
            f"/tenants/{_seg(tenant_id)}/trial/extend",
            TrialExtendOut,
            body={"days": days},
            idempotency_key=idempotency_key,
        )

    def get_user(self, tenant_id: str, email: str) -> ApiReply[TenantUserOut] | Observation:
        return self.request("GET", f"/tenants/{_seg(tenant_id)}/users/{_seg(email)}", TenantUserOut)

    def unlock_user(
        self, tenant_id: str, email: str, *, idempotency_key: str | None
    ) -> ApiReply[TenantUserOut] | Observation:
        return self.request(
            "POST",
            f"/tenants/{_seg(tenant_id)}/users/{_seg(email)}/unlock",
            TenantUserOut,
            body={},
            idempotency_key=idempotency_key,
        )

    def get_config(self, tenant_id: str) -> ApiReply[TenantConfigOut] | Observation:
        return self.request("GET", f"/tenants/{_seg(tenant_id)}/config", TenantConfigOut)

    def set_config(
        self, tenant_id: str, key: str, *, value: str, reason: str, idempotency_key: str | None
    ) -> ApiReply[ConfigSetOut] | Observation:
        return self.request(
            "PUT",
            f"/tenants/{_seg(tenant_id)}/config/{_seg(key)}",
            ConfigSetOut,
            body={"value": value, "reason": reason},
            idempotency_key=idempotency_key,
        )

    def get_billing(self, tenant_id: str) -> ApiReply[BillingOut] | Observation:
        return self.request("GET", f"/tenants/{_seg(tenant_id)}/billing", BillingOut)

    # --- The one request path ---------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        model: type[BodyT],
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiReply[BodyT] | Observation:
        """Send with retries and validate the answer. Writes get an Idempotency-Key (one per call) if none given."""
        headers: dict[str, str] = {}
        write = method in WRITE_METHODS
        if write:
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        try:
            sent = self._send_with_retries(method, path, body, headers)
            if isinstance(sent, Observation):
                meta = dict(sent.meta)
                maybe_received = meta.pop("maybe_received", False)
                sent = Observation.failure(sent.error_type, sent.message, retryable=sent.retryable, **meta)
                return _uncertain(sent) if write and maybe_received else sent
            response, attempts = sent
            answer = self._interpret(method, path, model, response, attempts)
            if write and isinstance(answer, Observation) and response.status_code < 300:
                return _uncertain(answer)  # a 2xx we cannot read: the write happened, its result is unknown
            return answer
        except Exception as exc:  # the client's promise: never raise into the tool
            logger.exception("Admin API call %s %s crashed", method, path)
            return Observation.failure(
                ErrorType.INTERNAL, CLIENT_CRASHED.format(method=method, path=path, error=type(exc).__name__)
            )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter": never zero, never in lockstep

    def _send_with_retries(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[httpx.Response, int] | Observation:
        where = {"method": method, "path": path}
        failure: Observation | None = None
        maybe_received = False  # whether any attempt may have reached the server without a definite answer
        for attempt in range(1, self._max_attempts + 1):
            wait: float | None = None
            try:
                response = self._client.request(method, path, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                maybe_received = maybe_received or not isinstance(exc, NOT_SENT)
                failure = Observation.failure(
                    ErrorType.TIMEOUT,
                    TIMED_OUT.format(**where, timeout=self._timeout, attempts=attempt),
                    retryable=True,
                    attempts=attempt,
                    maybe_received=maybe_received,
                )
            except httpx.TransportError as exc:
                maybe_received = maybe_received or not isinstance(exc, NOT_SENT)
                failure = Observation.failure(
                    ErrorType.UPSTREAM,
                    UNREACHABLE.format(**where, error=type(exc).__name__, attempts=attempt),
                    retryable=True,
                    attempts=attempt,
                    maybe_received=maybe_received,
                )
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response, attempt
                # A 5xx may come after the server acted; a 429 is a refusal before it did anything.
                maybe_received = maybe_received or response.status_code >= 500
                code, message = _error_detail(response)
                detail = f" ({code}: {message})" if message else ""
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                failure = Observation.failure(
                    ErrorType.UPSTREAM,
                    SERVER_ERROR.format(**where, status=response.status_code, detail=detail, attempts=attempt),
                    retryable=True,
                    status_code=response.status_code,
                    error_code=code,
                    attempts=attempt,
                    retry_after_seconds=wait,
                    maybe_received=maybe_received,
                )
                if wait is not None and wait > self._retry_after_cap:
                    return Observation.failure(
                        ErrorType.UPSTREAM,
                        RATE_LIMITED_LONG.format(**where, retry_after=wait)
                        if response.status_code == 429
                        else failure.message,
                        retryable=True,
                        status_code=response.status_code,
                        error_code=code,
                        attempts=attempt,
                        retry_after_seconds=wait,
                        maybe_received=maybe_received,
                    )
            if attempt < self._max_attempts:
                delay = wait if wait is not None else self._backoff(attempt)
                logger.info("Admin API %s %s attempt %d failed; retrying in %.2fs", method, path, attempt, delay)
                self._sleep(delay)
        assert failure is not None  # the loop ran at least once
        return failure

    def _interpret(
        self, method: str, path: str, model: type[BodyT], response: httpx.Response, attempts: int
    ) -> ApiReply[BodyT] | Observation:
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
        try:
            payload = response.json()
        except ValueError:
            return Observation.failure(
                ErrorType.UNEXPECTED_RESPONSE, NOT_JSON.format(method=method, path=path, status=status), **meta
            )
        try:
            body = model.model_validate(payload)
        except ValidationError as exc:
            received = f"keys {', '.join(payload)}" if isinstance(payload, dict) else f"a JSON {type(payload).__name__}"
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:5]
            )
            return Observation.failure(
                ErrorType.UNEXPECTED_RESPONSE,
                UNEXPECTED_SHAPE.format(
                    method=method, path=path, expected=_expected_keys(model), received=received, problems=problems
                ),
                expected_keys=list(model.model_fields),
                received_keys=list(payload) if isinstance(payload, dict) else [],
                **meta,
            )
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return ApiReply(body=body, status=status, attempts=attempts, replayed=replayed)


def _uncertain(failure: Observation) -> Observation:
    return Observation.failure(failure.error_type, failure.message + OUTCOME_UNKNOWN, uncertain=True, **failure.meta)


def _seg(value: str) -> str:
    """One URL path segment: a tenant id, e-mail or config key can never reach another path."""
    return quote(value, safe="@")


def admin_api() -> AdminApiClient:
    """A client configured from settings; use as a context manager."""
    auth = None
    if settings.ADMIN_API_AUTH == "sigv4":  # behind API Gateway's IAM authorization
        from agent.aws import ExecuteApiAuth

        auth = ExecuteApiAuth(region=settings.AWS_REGION)
    return AdminApiClient(
        base_url=settings.ADMIN_API_URL,
        token=settings.ADMIN_API_TOKEN,
        auth=auth,
        timeout=settings.ADMIN_API_TIMEOUT_SECONDS,
        max_attempts=settings.ADMIN_API_MAX_ATTEMPTS,
    )
