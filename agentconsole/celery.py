"""The Celery application. Configuration lives in Django settings under the CELERY_ namespace.

Besides the app, the worker's operational wiring: Django's logging (JSON in production) instead of Celery's own,
the task id on every log line, traces, the worker's metrics exporter, and the heartbeat /readyz looks for.
"""

from __future__ import annotations

import logging
import os
from contextvars import Token
from typing import Any

from celery import Celery, bootsteps, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")

logger = logging.getLogger(__name__)

app = Celery("agentconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_as_dict(sender: Celery, **kwargs: Any) -> None:
    """Celery reads its configuration from Django's settings as a plain dict of them, taken when it loads that
    configuration (its first `app.conf` read; on_configure is sent just before): the same keys and values it would
    read from the settings object, which Celery held as it was then anyway (it unwraps LazySettings once, so
    override_settings never reached it). Read through the settings object, each lookup tried up to four spellings
    of the key (CELERY_-prefixed, new and old names) in each of three maps, every miss an AttributeError raised in
    Django's Settings and turned into a KeyError: 1.6 million instructions a send_task on the memory:// broker, 1.2
    million with the dict (callgrind, 100 sends)."""
    from django.conf import settings

    sender.config_from_object({name: getattr(settings, name) for name in dir(settings) if name.isupper()})


@signals.setup_logging.connect
def _keep_django_logging(**kwargs: Any) -> None:
    """Connected, so Celery leaves logging alone: Django's LOGGING (LOG_FORMAT, LOG_LEVEL) rules the worker too."""


_task_log_tokens: dict[str, Token] = {}


@signals.task_prerun.connect
def _bind_task_ids(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    from agentconsole.logs import log_context_push

    _task_log_tokens[task_id] = log_context_push(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _unbind_task_ids(task_id: str = "", **kwargs: Any) -> None:
    from agentconsole.logs import log_context_pop

    token = _task_log_tokens.pop(task_id, None)
    if token is not None:
        log_context_pop(token)


_heartbeat: Any = None  # agentconsole.health.Heartbeat of this worker, once its consumer started


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(task: Any = None, **kwargs: Any) -> None:
    """Around each task, as Django does around a request: a connection that saw an error, failed its health check
    or outlived DATABASE_CONN_MAX_AGE is closed; any other stays open for the thread's next task. A task run eagerly
    runs in its caller's thread, inside its caller's transaction perhaps: its connection is the caller's."""
    from django.db import close_old_connections

    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    close_old_connections()


@signals.worker_init.connect
def _worker_start(sender: Any = None, **kwargs: Any) -> None:
    """The worker's main process: traces, and its own metrics exporter when METRICS_WORKER_ADDRESS is set."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    concurrency = getattr(sender, "concurrency", None) or 0
    if concurrency > settings.WORKER_CONCURRENCY:
        raise ImproperlyConfigured(
            f"--concurrency {concurrency} is more than WORKER_CONCURRENCY ({settings.WORKER_CONCURRENCY}), which "
            "sizes the Bedrock client's connection pool and the database connections: set WORKER_CONCURRENCY instead."
        )
    database_connections_check()

    from agentconsole import metrics
    from agentconsole.tracing import tracing_configure

    tracing_configure(process="worker")
    if settings.METRICS_WORKER_ADDRESS:
        metrics.exporter_start(
            settings.METRICS_WORKER_ADDRESS, liveness=lambda: _heartbeat is not None and _heartbeat.alive()
        )


def database_connections_check() -> None:
    """Refuse to start a worker when PostgreSQL cannot hold the connections this machine's workers keep,
    WORKER_PROCESSES x (WORKER_CONCURRENCY + 1): one per thread, kept across tasks, and the heartbeat's. Past
    max_connections, turns fail with "too many clients" under load. Warn when the connections open now leave too
    little room. Off with WORKER_CHECK_DB_CONNECTIONS=false (behind a transaction-mode pooler such as PgBouncer, whose
    clients are not server connections)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError, connection

    if not settings.WORKER_CHECK_DB_CONNECTIONS or connection.vendor != "postgresql":
        return
    needed = settings.WORKER_PROCESSES * (settings.WORKER_CONCURRENCY + 1)  # + 1: the heartbeat's
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')"
                "::int, (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
            )
            allowed, open_now = cursor.fetchone()
    except DatabaseError:
        logger.warning("could not read PostgreSQL's max_connections; the worker starts unchecked", exc_info=True)
        return
    finally:
        if not connection.in_atomic_block:
            connection.close()  # the worker's main thread runs no task: it keeps no connection
    if needed > allowed:
        raise ImproperlyConfigured(
            f"WORKER_PROCESSES x (WORKER_CONCURRENCY + 1) = {settings.WORKER_PROCESSES} x "
            f"({settings.WORKER_CONCURRENCY} + 1) = {needed} database connections, more than PostgreSQL allows "
            f"({allowed}: max_connections less the superuser reserve): lower them, raise max_connections, or put a "
            "pooler in front (WORKER_CHECK_DB_CONNECTIONS=false)."
        )
    if needed > allowed - open_now + 1:  # + 1: this check's own connection
        logger.warning(
            "this machine's workers may open %s database connections; PostgreSQL allows %s and %s are open now",
            needed,
            allowed,
            open_now,
        )


@signals.worker_process_init.connect
def _pool_process_start(**kwargs: Any) -> None:
    """A prefork pool's child: it needs its own exporter connection (threads and solo pools never get here)."""
    from agentconsole.tracing import tracing_configure

    tracing_configure(process="worker")


@signals.worker_process_shutdown.connect
def _pool_process_stop(pid: int | None = None, **kwargs: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


class HeartbeatStep(bootsteps.StartStopStep):
    """Write this worker's heartbeat every WORKER_HEARTBEAT_SECONDS from the consumer's own timer.

    A consumer step: Celery stops it when the consumer stops or loses the broker and starts it again after, so a
    heartbeat means "this worker is connected and taking tasks", not only "the process exists".
    """

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, consumer: Any) -> None:
        global _heartbeat
        from django.conf import settings

        from agentconsole.health import Heartbeat

        if _heartbeat is None or _heartbeat.hostname != consumer.hostname:
            _heartbeat = Heartbeat(hostname=consumer.hostname)
        queues = [queue.name for queue in consumer.task_consumer.queues]
        _heartbeat.beat(queues)
        self.timer_ref = consumer.timer.call_repeatedly(
            settings.WORKER_HEARTBEAT_SECONDS, _heartbeat.beat, (queues,), priority=10
        )

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def shutdown(self, consumer: Any) -> None:
        self.stop(consumer)
        if _heartbeat is not None:
            _heartbeat.forget()


app.steps["consumer"].add(HeartbeatStep)
