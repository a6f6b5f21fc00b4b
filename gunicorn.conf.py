"""gunicorn's configuration for the web: `gunicorn -c gunicorn.conf.py agentconsole.wsgi`.

Every value can still be overridden on the command line or in GUNICORN_CMD_ARGS. WEB_CONCURRENCY (worker
processes) is read by gunicorn itself.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - inside a container
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads: a request waits on the database, not on the CPU. Each thread holds one database connection.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5  # under the load balancer's idle timeout
max_requests = 2000  # recycle workers now and then, staggered
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# Access lines as JSON, like the application's own (LOG_FORMAT=plain for the classic format).
_json = os.environ.get("LOG_FORMAT", "json") == "json"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "agentconsole.logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if _json else "plain"}},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# The request id the application gave the request (agentconsole.logs) links an access line to its log lines.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'

# Metrics counted in several worker processes are summed through prometheus-client's multiprocess mode: each
# process writes its own files in one directory, read at scrape time. The directory must be empty at start.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentconsole-metrics-")


def on_starting(server: Any) -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
