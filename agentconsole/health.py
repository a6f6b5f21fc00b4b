"""/healthz, /readyz and /metrics, and the workers' heartbeat that /readyz looks for.

The three endpoints are answered by the first middleware, before host validation, the HTTPS redirect, sessions
and CSRF: a load balancer or a scraper reaches a task by its IP over plain HTTP inside the VPC, and none of them
builds a URL from the Host header. They are cheap: /healthz touches nothing, /readyz caches its answer for a couple
of seconds, and neither says more than "ok" or a fixed word per check (no error text, no host names, no secrets).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from agentconsole import metrics

logger = logging.getLogger(__name__)

READY_CACHE_SECONDS = 2.0
OK, UNREACHABLE, PENDING, MISSING = "ok", "unreachable", "pending", "no recent heartbeat"

_migrations_applied = False
_ready_lock = threading.Lock()
_ready_cache: tuple[float, dict[str, str]] | None = None


# --- Readiness ---------------------------------------------------------------------------------------------------


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.warning("readiness: the database is unreachable", exc_info=True)
        return UNREACHABLE
    return OK


def _check_migrations() -> str:
    """Applied stays applied for the life of a process (new code comes with a new process), so remember it."""
    global _migrations_applied
    if _migrations_applied:
        return OK
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        logger.warning("readiness: could not read the migration state", exc_info=True)
        return UNREACHABLE
    _migrations_applied = not plan
    return OK if not plan else PENDING


def _check_broker() -> str:
    try:
        metrics.queue_depth(settings.CELERY_TASK_DEFAULT_QUEUE)
    except Exception:
        logger.warning("readiness: the broker is unreachable", exc_info=True)
        return UNREACHABLE
    return OK


def _check_worker() -> str:
    from agentconsole.models import WorkerHeartbeat

    since = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS)
    try:
        recent = WorkerHeartbeat.objects.filter(seen_at__gte=since).values_list("queues", flat=True)
        consuming = any(settings.CELERY_TASK_DEFAULT_QUEUE in (queues or []) for queues in recent)
    except Exception:
        logger.warning("readiness: could not read worker heartbeats", exc_info=True)
        return UNREACHABLE
    return OK if consuming else MISSING


def readiness() -> dict[str, str]:
    """Each check's word; ready when every one is "ok". Cached briefly so probes cannot load the database."""
    global _ready_cache
    with _ready_lock:
        now = time.monotonic()
        if _ready_cache is not None and now - _ready_cache[0] < READY_CACHE_SECONDS:
            return _ready_cache[1]
        checks = {"database": _check_database()}
        if checks["database"] == OK:
            checks["migrations"] = _check_migrations()
            checks["worker"] = _check_worker()
        checks["broker"] = _check_broker()
        _ready_cache = (now, checks)
        return checks


def readiness_cache_clear() -> None:
    global _ready_cache, _migrations_applied
    with _ready_lock:
        _ready_cache = None
        _migrations_applied = False


# --- The middleware ----------------------------------------------------------------------------------------------


def _healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness()
    ready = all(value == OK for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        return HttpResponse(metrics.METRICS_DISABLED, status=404, content_type="text/plain")
    if not metrics.token_valid(request.headers.get("Authorization", "")):
        response = HttpResponse(metrics.METRICS_UNAUTHORIZED, status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(with_state=True), content_type=metrics.CONTENT_TYPE_LATEST)


OPS_ENDPOINTS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": _healthz,
    "/readyz": _readyz,
    "/metrics": _metrics,
}


def ops_endpoints_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    def middleware(request: HttpRequest) -> HttpResponse:
        endpoint = OPS_ENDPOINTS.get(request.path_info.rstrip("/") or "/")
        if endpoint is None:
            return get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse("Only GET and HEAD.", status=405, content_type="text/plain")
            response["Allow"] = "GET, HEAD"
            response["Content-Length"] = str(len(response.content))
            return response
        response = endpoint(request)
        response["Cache-Control"] = "no-store"
        # As CommonMiddleware would set it, which these answers skip: without it gunicorn sends them chunked.
        response["Content-Length"] = str(len(response.content))
        return response

    return middleware


# --- The workers' heartbeat --------------------------------------------------------------------------------------


def _drop_dead_connection() -> None:
    """The heartbeat runs outside any task or request, where nothing else recycles a connection the database
    closed (a failover, an idle timeout). Never inside a transaction: that one is in use."""
    if not connection.in_atomic_block:
        close_old_connections()


class Heartbeat:
    """Written by a worker's consumer on its own timer: it stops when the consumer stops or loses the broker."""

    def __init__(self, *, hostname: str) -> None:
        self.hostname = hostname
        self.started_at = timezone.now()
        self.last_beat = 0.0  # time.monotonic() of the last successful write, for the exporter's /healthz

    def beat(self, queues: list[str]) -> None:
        from agentconsole.models import WorkerHeartbeat

        try:
            _drop_dead_connection()
            now = timezone.now()
            WorkerHeartbeat.objects.update_or_create(
                hostname=self.hostname,
                defaults={"queues": sorted(queues), "pid": os.getpid(), "started_at": self.started_at, "seen_at": now},
            )
            WorkerHeartbeat.objects.filter(seen_at__lt=now - timedelta(days=1)).delete()
            self.last_beat = time.monotonic()
        except Exception:
            logger.warning("worker heartbeat could not be written", exc_info=True)
            connection.close()

    def forget(self) -> None:
        """A worker shutting down cleanly says so at once instead of letting its heartbeat age out."""
        from agentconsole.models import WorkerHeartbeat

        try:
            _drop_dead_connection()
            WorkerHeartbeat.objects.filter(hostname=self.hostname).delete()
        except Exception:
            logger.warning("worker heartbeat could not be removed", exc_info=True)

    def alive(self) -> bool:
        return self.last_beat > 0 and time.monotonic() - self.last_beat < settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
