"""Several Celery workers on one machine: `python -m agentconsole.worker [more celery worker options]`.

A worker process runs Python on one core at a time (the GIL), however many threads it has, and a model turn costs
tens of milliseconds of CPU around its model call: one process tops out at one core. This starts
WORKER_PROCESSES workers of WORKER_CONCURRENCY threads each (`celery -A agentconsole worker --pool threads`),
named apart (worker1@host, worker2@host, ...), each with its own Bedrock client pool and database connections.

It passes SIGTERM and SIGINT on to every worker (a warm shutdown: each finishes the turns it is in) and waits for
them. When one worker exits on its own, it stops the others and exits with that worker's status, so the
supervisor (systemd, a container's restart policy) restarts the whole set; a run the dead worker was in is
redelivered or found by the reconciler, as after any crash.

With METRICS_WORKER_ADDRESS set, the first worker serves /metrics for all of them (their counters summed through
PROMETHEUS_MULTIPROC_DIR, a fresh directory unless set) and /healthz; the others serve none.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

_POLL_SECONDS = 0.5


def worker_commands(processes: int, queue: str, extra: list[str]) -> list[list[str]]:
    """The `celery worker` command of each process: threads pool (WORKER_CONCURRENCY threads, from the settings),
    the agent's queue, a node name of its own."""
    return [
        [sys.executable, "-m", "celery", "-A", "agentconsole", "worker", "--pool", "threads", "-Q", queue,
         "--without-gossip", "--without-mingle", "--hostname", f"worker{n}@%h", *extra]
        for n in range(1, processes + 1)
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
    from django.conf import settings

    extra = list(sys.argv[1:] if argv is None else argv)
    processes = settings.WORKER_PROCESSES
    commands = worker_commands(processes, settings.CELERY_TASK_DEFAULT_QUEUE, extra)
    env = dict(os.environ)
    own_metrics_dir = ""
    if settings.METRICS_WORKER_ADDRESS and processes > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agentconsole-worker-metrics-")
    children = []
    for n, command in enumerate(commands):
        child_env = env if n == 0 else {**env, "METRICS_WORKER_ADDRESS": ""}
        # A session of its own: a Ctrl-C in a terminal reaches this process only, which passes it on once (a
        # second SIGINT would make Celery stop cold, abandoning the turns in flight).
        children.append(subprocess.Popen(command, env=child_env, start_new_session=True))

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        while any(child.poll() is None for child in children):
            exited = [child for child in children if child.poll() is not None]
            if exited and not stopping:
                # One worker died or gave up: stop the set, so the supervisor starts it again whole.
                code = exited[0].returncode
                status = 128 - code if code < 0 else (code or 1)
                stop(signal.SIGTERM, None)
            time.sleep(_POLL_SECONDS)
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
