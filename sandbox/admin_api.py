"""The company's internal Admin API, as the sandbox plays it: its own NinjaAPI, OpenAPI document and errors.

Every error is `{"error": {"code": "<snake_case>", "message": "<text>"}}`. Around every operation sits `admin_call`:
bearer auth, then the injected faults, then (for writes) Idempotency-Key handling in one transaction with the effect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Router
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from agentconsole.errors import ApplicationError
from sandbox import selectors, services
from sandbox.models import FaultSwitch
from sandbox.schemas import (
    BillingOut,
    CacheResetOut,
    ConfigOut,
    ConfigSetIn,
    ConfigSetOut,
    ErrorOut,
    FaultsIn,
    FaultsOut,
    TenantOut,
    TrialExtendIn,
    TrialExtendOut,
    UserOut,
)

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = "A valid token is required: send 'Authorization: Bearer <token>'."
BODY_NOT_JSON = "The request body is not valid JSON."
BODY_NOT_OBJECT = "The request body must be a JSON object."
IDEMPOTENCY_KEY_INVALID = "The Idempotency-Key header must be 1 to 200 characters."
INJECTED_FAULT = "Injected fault: the Admin API's fault switch answered this request with an error."
INTERNAL_ERROR = "The Admin API failed unexpectedly."
PATH_NOT_FOUND = "No Admin API endpoint has the path {path!r}."
METHOD_NOT_ALLOWED = "{method} is not allowed on {path!r}; allowed: {allowed}."
INVALID_REQUEST = "The request is invalid: {problems}."

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_CONTENT_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
HTTP_ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}

RunFn = Callable[..., HttpResponseBase]


class _BadBody(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AdminApiBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> str | None:
        expected = settings.SANDBOX_ADMIN_API_TOKEN
        # An empty configured token must refuse everything, including an empty presented token.
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return "admin-api"
        return None


bearer = AdminApiBearer()


class _AdminApi(NinjaAPI):
    """Describes its paths relative to its base URL (`servers`), as a company's Admin API document does: the
    console appends them to ADMIN_API_URL."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> dict:
        schema = super().get_openapi_schema(path_prefix="", path_params=path_params)
        schema["servers"] = [{"url": BASE_PATH}]
        return schema


BASE_PATH = "/sandbox/admin-api/v1"

api = _AdminApi(
    title="Sandbox Admin API",
    version="1",
    description=(
        "The company's internal Admin API as the sandbox plays it. Bearer auth; every POST/PUT honours an "
        'Idempotency-Key header; errors are {"error": {"code", "message"}}.'
    ),
    urls_namespace="sandbox-admin-api",
    auth=bearer,
)


def error_response(
    request: HttpRequest, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    response = api.create_response(request, {"error": {"code": code, "message": message}}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApplicationError)
def _application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    code = getattr(exc, "code", HTTP_ERROR_CODES.get(exc.status_code, "bad_request"))
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, services.CacheResetRateLimited) else None
    return error_response(request, exc.status_code, code, exc.message, headers)


def _field_name(location: tuple | list) -> str:
    # ninja locates body errors as ("body", "<parameter name>", field, ...); the caller knows only the field.
    parts = list(location)
    if parts[:1] == ["body"]:
        parts = parts[2:]
    return ".".join(str(part) for part in parts) or "body"


@api.exception_handler(NinjaValidationError)
def _validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    problems = "; ".join(f"{_field_name(error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors)
    return error_response(request, 422, "invalid_request", INVALID_REQUEST.format(problems=problems or "invalid"))


@api.exception_handler(DjangoValidationError)
def _model_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return error_response(request, 422, "invalid_request", INVALID_REQUEST.format(problems="; ".join(exc.messages)))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 401:
        return error_response(request, 401, "unauthorized", NOT_AUTHENTICATED, {"WWW-Authenticate": "Bearer"})
    return error_response(request, exc.status_code, HTTP_ERROR_CODES.get(exc.status_code, "http_error"), str(exc))


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, "not_found", PATH_NOT_FOUND.format(path=request.path))


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("Admin API %s %s failed", request.method, request.path)
    return error_response(request, 500, "internal_error", INTERNAL_ERROR)


# --- The wrapper around every operation -----------------------------------------------------------------------


def _json_body(request: HttpRequest) -> Any:
    if not request.body.strip():
        return {}  # an empty body and `{}` are the same request
    if (
        request.method == "POST"
        and request.content_type in FORM_CONTENT_TYPES
        and not request.POST
        and not request.FILES
    ):
        # Some clients (Django's test client among them) send a bodiless POST as an empty form. request.body was
        # read first, so parsing the form here leaves it readable for ninja.
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise _BadBody(BODY_NOT_JSON) from None
    if not isinstance(body, dict):
        raise _BadBody(BODY_NOT_OBJECT)
    return body


def _request_hash(request: HttpRequest, body: Any) -> str:
    canonical = json.dumps({"method": request.method, "path": request.path, "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _remembered(status: int) -> bool:
    # 2xx and 4xx are the request's real outcome. 5xx may succeed on retry, and so may a 429: replaying a stored
    # rate-limit refusal would make a client that waits Retry-After and retries with the same key fail forever.
    return 200 <= status < 500 and status != 429


def _write(run: RunFn, request: HttpRequest, args: tuple, kwargs: dict, *, swallow: bool) -> HttpResponseBase:
    try:
        body = _json_body(request)
    except _BadBody as exc:
        return error_response(request, 400, "invalid_json", exc.message)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key.strip()) <= 200:
        return error_response(request, 400, "invalid_idempotency_key", IDEMPOTENCY_KEY_INVALID)
    with transaction.atomic():
        record = None
        if key is not None:
            try:
                record, created = services.idempotency_record_claim(
                    key=key, method=request.method, path=request.path, request_hash=_request_hash(request, body)
                )
            except services.IdempotencyKeyReused as exc:
                return _application_error(request, exc)
            if not created:
                replay = api.create_response(request, record.response_body, status=record.status_code)
                replay[REPLAYED_HEADER] = "true"
                return replay
        response = run(request, *args, **kwargs)
        if swallow or response.status_code >= 500 or (record is not None and not _remembered(response.status_code)):
            transaction.set_rollback(True)
        elif record is not None:
            services.idempotency_record_complete(
                record=record, status_code=response.status_code, response_body=json.loads(response.content)
            )
    return response


def _reshaped(request: HttpRequest, response: HttpResponseBase) -> HttpResponse:
    body = {"data": json.loads(response.content), "meta": {"api_version": "2"}}
    reshaped = api.create_response(request, body, status=response.status_code)
    for name, value in response.items():
        if name.lower() not in {"content-type", "content-length"}:
            reshaped[name] = value
    return reshaped


def admin_call(*, faults: bool) -> Callable[[RunFn], RunFn]:
    """Wrap an operation's run: auth first, then the fault switch (when `faults`), then idempotent writes."""

    def decorator(run: RunFn) -> RunFn:
        @wraps(run)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            # Ninja authenticates again inside run; checking here keeps unauthenticated calls away from the
            # fault switch and, above all, from claiming Idempotency-Keys.
            if not bearer(request):
                return error_response(request, 401, "unauthorized", NOT_AUTHENTICATED, {"WWW-Authenticate": "Bearer"})
            switch = selectors.fault_switch_get() if faults else FaultSwitch()
            if switch.latency_ms:
                time.sleep(switch.latency_ms / 1000)
            if switch.error_rate and random.random() < switch.error_rate:
                return error_response(request, switch.error_status, "injected_fault", INJECTED_FAULT)
            if request.method in WRITE_METHODS:
                response = _write(run, request, args, kwargs, swallow=switch.swallow_writes)
            else:
                response = run(request, *args, **kwargs)
            if switch.changed_shape and 200 <= response.status_code < 300:
                return _reshaped(request, response)
            return response

        return wrapper

    return decorator


# --- Tenants: the endpoints the agent's tools call ------------------------------------------------------------

ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut}


def _idempotent() -> dict[str, Any]:
    """OpenAPI for the Idempotency-Key header every write honours."""
    return {
        "parameters": [
            {
                "in": "header",
                "name": IDEMPOTENCY_HEADER,
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": (
                    "Replays the stored answer (with Idempotent-Replayed: true) for the same method, path and body; "
                    "422 idempotency_key_reused for another request."
                ),
            }
        ]
    }


tenants = Router(tags=["tenants"])
tenants.add_decorator(admin_call(faults=True), mode="view")


def _tenant_out(tenant: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant.pk,
        "name": tenant.name,
        "plan": tenant.plan,
        "status": tenant.status,
        "trial_ends_at": tenant.trial_ends_at,
        "cache_version": tenant.cache_version,
        "cache_reset_at": tenant.cache_reset_at,
    }


def _user_out(user: Any) -> dict[str, Any]:
    return {
        "tenant_id": user.tenant_id,
        "email": user.email,
        "locked": user.locked,
        "failed_logins": user.failed_logins,
        "locked_at": user.locked_at,
    }


@tenants.get("/{tenant_id}", response={200: TenantOut, **ERRORS}, summary="Read a tenant")
def tenant_read(request: HttpRequest, tenant_id: str) -> dict[str, Any]:
    return _tenant_out(selectors.tenant_get(tenant_id=tenant_id))


@tenants.post(
    "/{tenant_id}/cache/reset",
    response={200: CacheResetOut, 429: ErrorOut, **ERRORS},
    summary="Reset a tenant's cache (rate limited per tenant; 429 carries Retry-After)",
    openapi_extra=_idempotent(),
)
def tenant_cache_reset(request: HttpRequest, tenant_id: str) -> dict[str, Any]:
    tenant = services.tenant_cache_reset(tenant_id=tenant_id, now=timezone.now())
    return {"tenant_id": tenant.pk, "cache_version": tenant.cache_version, "cache_reset_at": tenant.cache_reset_at}


@tenants.post(
    "/{tenant_id}/trial/extend",
    response={200: TrialExtendOut, **ERRORS},
    summary="Extend a trialing tenant's trial by 1 to 30 days",
    openapi_extra=_idempotent(),
)
def tenant_trial_extend(request: HttpRequest, tenant_id: str, payload: TrialExtendIn) -> dict[str, Any]:
    extension = services.tenant_trial_extend(tenant_id=tenant_id, days=payload.days, now=timezone.now())
    return {
        "tenant_id": extension.tenant.pk,
        "trial_ends_at": extension.tenant.trial_ends_at,
        "previous_trial_ends_at": extension.previous_trial_ends_at,
    }


@tenants.get("/{tenant_id}/users/{email}", response={200: UserOut, **ERRORS}, summary="Read a tenant's user")
def tenant_user_read(request: HttpRequest, tenant_id: str, email: str) -> dict[str, Any]:
    return _user_out(selectors.tenant_user_get(tenant_id=tenant_id, email=email))


@tenants.post(
    "/{tenant_id}/users/{email}/unlock",
    response={200: UserOut, 409: ErrorOut, **ERRORS},
    summary="Unlock a locked user and clear its failed logins",
    openapi_extra=_idempotent(),
)
def tenant_user_unlock(request: HttpRequest, tenant_id: str, email: str) -> dict[str, Any]:
    return _user_out(services.tenant_user_unlock(tenant_id=tenant_id, email=email, now=timezone.now()))


@tenants.get("/{tenant_id}/config", response={200: ConfigOut, **ERRORS}, summary="Read a tenant's configuration")
def tenant_config_read(request: HttpRequest, tenant_id: str) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "values": selectors.tenant_config_get(tenant_id=tenant_id)}


@tenants.put(
    "/{tenant_id}/config/{key}",
    response={200: ConfigSetOut, **ERRORS},
    summary="Change the value of an existing configuration key",
    openapi_extra=_idempotent(),
)
def tenant_config_set(request: HttpRequest, tenant_id: str, key: str, payload: ConfigSetIn) -> dict[str, Any]:
    change = services.tenant_config_set(
        tenant_id=tenant_id, key=key, value=payload.value, reason=payload.reason, now=timezone.now()
    )
    return {
        "tenant_id": change.tenant_id,
        "key": change.key,
        "value": change.value,
        "previous_value": change.previous_value,
    }


@tenants.get("/{tenant_id}/billing", response={200: BillingOut, **ERRORS}, summary="Read a tenant's billing status")
def tenant_billing_read(request: HttpRequest, tenant_id: str) -> dict[str, Any]:
    billing = selectors.tenant_billing_get(tenant_id=tenant_id)
    return {
        "tenant_id": billing.tenant.pk,
        "plan": billing.tenant.plan,
        "status": billing.tenant.status,
        "subscription": billing.subscription,
        "invoices": billing.invoices,
    }


# --- Faults: the demo's control plane, itself never faulted (or a fault could not be switched off) ---------------

faults = Router(tags=["faults"])
faults.add_decorator(admin_call(faults=False), mode="view")


@faults.get("", response={200: FaultsOut, 401: ErrorOut}, summary="Read the faults in force")
def faults_read(request: HttpRequest) -> FaultSwitch:
    return selectors.fault_switch_get()


@faults.put(
    "",
    response={200: FaultsOut, **ERRORS},
    summary="Set the faults in force ({} turns them all off)",
    openapi_extra=_idempotent(),
)
def faults_set(request: HttpRequest, payload: FaultsIn) -> FaultSwitch:
    return services.fault_switch_set(**payload.model_dump())


api.add_router("/tenants/", tenants)
api.add_router("/_faults", faults)


# --- URLs: keep the "always JSON" promise for unknown paths and wrong methods too --------------------------------


def _json_method_not_allowed(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code == 405:
            allowed = response.get("Allow", "")
            message = METHOD_NOT_ALLOWED.format(method=request.method, path=request.path, allowed=allowed)
            return error_response(request, 405, "method_not_allowed", message, {"Allow": allowed})
        return response

    return wrapper


@csrf_exempt
def _path_not_found(request: HttpRequest, unknown: str = "") -> HttpResponse:
    return error_response(request, 404, "not_found", PATH_NOT_FOUND.format(path=request.path))


def admin_api_urls() -> list[URLPattern | URLResolver]:
    """The Admin API's URL patterns, relative to where they are mounted (the base URL ends in /admin-api/v1)."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _json_method_not_allowed(pattern.callback)
    return [
        path("", include((patterns, app_name), namespace=namespace)),
        re_path(r"^(?P<unknown>.*)$", _path_not_found),
    ]
