"""Prometheus metrics: the process's own counters and histograms, plus gauges read at scrape time.

Two kinds of metric, kept apart on purpose:
- Process metrics (turns, model latency, tokens, tool calls...) are counted by the process doing the work with
  prometheus-client. Several processes on one host (gunicorn workers, Celery workers) share them through
  prometheus-client's multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set; a worker can also serve its own on
  METRICS_WORKER_ADDRESS (one exporter per worker task on ECS).
- State gauges (runs by status, approvals pending and their age, queue depth) are read from the database and the
  broker when the web's /metrics is scraped, so they are right whichever process or host changed them.

The web's page needs `Authorization: Bearer $METRICS_TOKEN` and is off without a token. A worker's exporter
listens only where METRICS_WORKER_ADDRESS says (keep it on the task's loopback for a sidecar to scrape) and wants
the same token when one is set.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, ThreadingWSGIServer

logger = logging.getLogger(__name__)

METRICS_DISABLED = "Metrics are off: set METRICS_TOKEN to serve them."
METRICS_UNAUTHORIZED = "Send Authorization: Bearer <METRICS_TOKEN>."

# Sources read from the database or the broker when scraped: served by the web's /metrics only, so N workers do
# not each run the same queries.
_state_sources: dict[str, Callable[[], Iterable[Metric]]] = {}


def state_collector_register(name: str, collect: Callable[[], Iterable[Metric]]) -> None:
    """Add a scrape-time source. One that raises is logged and reported by agentconsole_state_collector_up."""
    _state_sources[name] = collect


class _StateCollector:
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "agentconsole_state_collector_up", "1 when the collector could read its source.", labels=["collector"]
        )
        for name, collect in _state_sources.items():
            try:
                metrics = list(collect())
            except Exception:
                logger.exception("metrics collector %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from metrics
        yield up


_state_registry = CollectorRegistry(auto_describe=False)
_state_registry.register(_StateCollector())


def _process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition(*, with_state: bool) -> bytes:
    """The text exposition format: this host's process metrics, and the state gauges when asked."""
    output = generate_latest(_process_registry())
    if with_state:
        output += generate_latest(_state_registry)
    return output


def token_valid(header: str) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


# --- A worker's own exporter ------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _exporter_app(liveness: Callable[[], bool]) -> Callable:
    def app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            alive = liveness()
            start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"status": "ok"}' if alive else b'{"status": "unavailable"}']
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: /metrics or /healthz."]
        if settings.METRICS_TOKEN and not token_valid(environ.get("HTTP_AUTHORIZATION", "")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [METRICS_UNAUTHORIZED.encode()]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [exposition(with_state=False)]

    return app


def address_parse(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def exporter_start(address: str, *, liveness: Callable[[], bool]) -> tuple[str, int]:
    """Serve /metrics and /healthz on address (host:port; port 0 picks a free one) from a daemon thread."""
    host, port = address_parse(address)
    server = make_server(host, port, _exporter_app(liveness), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    bound = server.server_address[:2]
    logger.info(
        "metrics exporter listening on %s:%s", bound[0], bound[1], extra={"metrics_address": f"{bound[0]}:{bound[1]}"}
    )
    return str(bound[0]), int(bound[1])


# --- The broker ---------------------------------------------------------------------------------------------------


def queue_depth(queue: str) -> int:
    """Messages waiting in a queue, whatever the transport (Redis LLEN, SQS ApproximateNumberOfMessages, files)."""
    from celery import current_app as app  # the project's app, without importing agentconsole.celery back
    from kombu.exceptions import ChannelError

    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=0)  # fail fast: a probe retries by itself
        try:
            return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0  # Redis: a queue nobody has published to yet has no key


def _queue_metrics() -> Iterator[Metric]:
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    depth = GaugeMetricFamily("agentconsole_queue_depth", "Tasks waiting in the broker queue.", labels=["queue"])
    depth.add_metric([queue], queue_depth(queue))
    yield depth


state_collector_register("queue", _queue_metrics)
