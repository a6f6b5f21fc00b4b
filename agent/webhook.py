"""The Zendesk webhook's door: answered by the first middleware, ahead of a stack it has no use for.

The webhook proves itself by its HMAC signature. Sessions, CSRF, authentication, messages, CSP, htmx and django-axes
do nothing for it, yet walking them cost about as much CPU as the request's own work (bench/intake.py). So
`zendesk_webhook_middleware`, first in settings.MIDDLEWARE, answers `/api/webhooks/zendesk` — with or without the
trailing slash, since Zendesk admins paste the URL either way — and keeps what the stack gave it:

- the request id of agentconsole.logs on every log line of the request, and in the X-Request-ID answer header;
- ALLOWED_HOSTS: a Host the project does not serve is the same 400 (Django's DisallowedHost);
- the HTTPS redirect: with SECURE_SSL_REDIRECT on, a plain-HTTP request goes down the stack, which redirects it as
  it does any other;
- its answers: 202 {"event_id", "duplicate"}, or 400/401/405/413 {"detail", ...}, never a 500 for bad input.

django-ninja's route documents the webhook in the OpenAPI schema and answers the same (agent/api.py), should the
middleware ever be left out of MIDDLEWARE.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from agent.services.intake import zendesk_event_accept
from agentconsole.errors import ApplicationError, PayloadTooLarge
from agentconsole.logs import respond_with_request_id
from tickets.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_event, verify_signature

WEBHOOK_PATH = "/api/webhooks/zendesk"
WEBHOOK_PATHS = frozenset({WEBHOOK_PATH, WEBHOOK_PATH + "/"})

BODY_TOO_LARGE = "The body is larger than {limit} bytes."
CONTENT_LENGTH_INVALID = "The Content-Length header is not a number."
ONLY_POST = "Only POST."

JSON = "application/json"
# The signature's headers as WSGI names them: request.headers would build a mapping of every header first.
_SIGNATURE_META = "HTTP_" + SIGNATURE_HEADER.upper().replace("-", "_")
_TIMESTAMP_META = "HTTP_" + TIMESTAMP_HEADER.upper().replace("-", "_")


def _answer(payload: dict, status: int) -> HttpResponse:
    # HttpResponse with the JSON made here: JsonResponse's DjangoJSONEncoder is a Python-level encoder class, and
    # these payloads hold only strings, booleans and lists of them.
    # Content-Length as CommonMiddleware would set it: without it gunicorn sends the answer chunked.
    content = json.dumps(payload).encode()
    return HttpResponse(content, content_type=JSON, status=status, headers={"Content-Length": str(len(content))})


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """Refuse an oversize body before reading it, and again after in case Content-Length was absent or lied."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApplicationError(CONTENT_LENGTH_INVALID) from None
    if declared > limit:
        raise PayloadTooLarge(BODY_TOO_LARGE.format(limit=limit))
    body = request.body
    if len(body) > limit:
        raise PayloadTooLarge(BODY_TOO_LARGE.format(limit=limit))
    return body


def zendesk_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, validate, store, send one task message (agent.services.intake.zendesk_event_accept); 202 with the
    event's id. Any other method is a 405."""
    if request.method != "POST":
        response = _answer({"detail": ONLY_POST}, 405)
        response["Allow"] = "POST"
        return response
    try:
        body = _read_body(request, settings.ZENDESK_WEBHOOK_MAX_BODY_BYTES)
        verify_signature(
            secret=settings.ZENDESK_WEBHOOK_SECRET,
            timestamp=request.META.get(_TIMESTAMP_META),
            signature=request.META.get(_SIGNATURE_META),
            body=body,
            now=timezone.now(),
            max_skew=timedelta(seconds=settings.ZENDESK_WEBHOOK_MAX_SKEW_SECONDS),
        )
        accepted = zendesk_event_accept(parsed=parse_event(body), body=body)
    except ApplicationError as exc:  # the API's own answer to these (agentconsole/api.py)
        return _answer({"detail": exc.message, **exc.extra}, exc.status_code)
    return _answer({"event_id": accepted.event_id, "duplicate": accepted.duplicate}, 202)


def zendesk_webhook_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """First in MIDDLEWARE: the webhook's two URLs are answered here, every other request goes on unchanged."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path_info not in WEBHOOK_PATHS:
            return get_response(request)
        if settings.SECURE_SSL_REDIRECT and not request.is_secure():
            return get_response(request)  # SecurityMiddleware redirects it, as any other plain-HTTP request
        request.get_host()  # DisallowedHost for a Host not in ALLOWED_HOSTS: Django's 400, as down the stack
        return respond_with_request_id(request, zendesk_webhook)

    return middleware
