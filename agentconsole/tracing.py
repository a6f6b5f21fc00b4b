"""OpenTelemetry traces, exported over OTLP/HTTP when an endpoint is configured and off (no-op) otherwise.

Each process (a gunicorn worker, a Celery worker) calls tracing_configure() once at start. Until then, and when no
endpoint is set, the OpenTelemetry API hands out non-recording spans that cost next to nothing.

A run is worked by many short Celery tasks, possibly hours apart, so its spans cannot share a parent through an
in-memory context: `fixed_ids` lets the agent derive a run's trace id and root span id from the run itself, and
every task's spans join the same trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

logger = logging.getLogger(__name__)

TRACER_NAME = "agentconsole"
_configured_pid: int | None = None
_fixed: ContextVar[tuple[int, int] | None] = ContextVar("agentconsole_fixed_span_ids", default=None)


class _IdGenerator(RandomIdGenerator):
    """Random ids, except inside `fixed_ids`, where the next span gets the given trace and span ids."""

    def generate_trace_id(self) -> int:
        fixed = _fixed.get()
        return fixed[0] if fixed else super().generate_trace_id()

    def generate_span_id(self) -> int:
        fixed = _fixed.get()
        return fixed[1] if fixed else super().generate_span_id()


@contextmanager
def fixed_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """Start exactly one span in this block: it gets these ids (a root span whose ids others already use)."""
    token = _fixed.set((trace_id, span_id))
    try:
        yield
    finally:
        _fixed.reset(token)


def traces_endpoint() -> str:
    if settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    return ""


def _headers(raw: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: `key=value,key2=value2` (values URL-encoded, as the specification says)."""
    from urllib.parse import unquote

    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {unquote(key.strip()): unquote(value.strip()) for key, value in pairs}


def tracing_configure(*, process: str) -> bool:
    """Install the OTLP exporter in this process if an endpoint is configured. Safe to call more than once."""
    global _configured_pid
    endpoint = traces_endpoint()
    if not endpoint or _configured_pid == os.getpid():
        return bool(endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": settings.OTEL_SERVICE_NAME, "agentconsole.process": process})
    provider = TracerProvider(resource=resource, id_generator=_IdGenerator())
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=_headers(settings.OTEL_EXPORTER_OTLP_HEADERS), timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured_pid = os.getpid()
    logger.info("traces are exported over OTLP/HTTP", extra={"otlp_endpoint": endpoint.split("?")[0]})
    return True


def exporting() -> bool:
    """Whether this process has a tracer provider (tracing_configure found an endpoint): without one every span is
    a no-op, and what is read only to fill one in need not be read."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(
    name: str,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
    context: Any = None,
    start_time: int | None = None,
) -> Iterator[trace.Span]:
    """A current span; an exception escaping the block marks it as an error and is recorded on it."""
    if context is None and not exporting():
        # No tracer provider was set in this process (no endpoint): the API's no-op tracer would hand back the
        # current span and make it current again, which changes nothing. The loop opens a few spans a turn.
        yield trace.get_current_span()
        return
    clean = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer().start_as_current_span(
        name, kind=kind, attributes=clean, context=context, start_time=start_time
    ) as current:
        yield current
