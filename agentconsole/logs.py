"""Structured logs: one JSON object per line, carrying the ids of the work in hand on every line.

The ids live in a context variable, so a Celery task (run, ticket and task ids) or a request (request id) binds
them once and every line logged below it, by our code or a library, carries them. Context variables are per
thread and per asyncio task, so the threads pool's concurrent tasks never see each other's ids.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

_context: ContextVar[dict[str, Any] | None] = ContextVar("agentconsole_log_context", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# The attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def log_context_get() -> dict[str, Any]:
    return dict(_context.get() or {})


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Bind ids (run_id, ticket_id, task_id, request_id...) to every log line inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_push(**ids: Any) -> Token:
    """log_context in two halves, for code that binds and unbinds in separate callbacks (Celery's task signals)."""
    return _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})


def log_context_pop(token: Token) -> None:
    _context.reset(token)


def log_context_bind(**ids: Any) -> None:
    """Add ids to the current context until the enclosing log_context block ends (for ids learnt midway)."""
    _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})


def _trace_ids() -> dict[str, str]:
    """The current span's ids, so a log line links to its trace. Empty when tracing is off."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids, trace ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **log_context_get(),
            **_trace_ids(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """For people at a terminal (`make demo`): the classic line, with the bound ids appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = log_context_get()
        if not ids:
            return line
        first, newline, rest = line.partition("\n")
        return first + " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]" + newline + rest


def request_id_for(request: HttpRequest) -> str:
    """The load balancer's X-Request-ID when it sends a sane one, else a new id."""
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    return given if 0 < len(given) <= 64 and given.isascii() and given.replace("-", "").isalnum() else uuid.uuid4().hex


def request_context_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """Give each request an id (the load balancer's X-Request-ID when it sends a sane one) for its log lines."""

    def middleware(request: HttpRequest) -> HttpResponse:
        return respond_with_request_id(request, get_response)

    return middleware


def respond_with_request_id(request: HttpRequest, handler: Callable[[HttpRequest], HttpResponse]) -> HttpResponse:
    """The handler's answer to the request, its log lines and its X-Request-ID header carrying the request's id."""
    request_id = request_id_for(request)
    with log_context(request_id=request_id):
        response = handler(request)
    response[REQUEST_ID_HEADER] = request_id
    return response
