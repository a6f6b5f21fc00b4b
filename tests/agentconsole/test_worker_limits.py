from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from agentconsole.celery import _worker_start


def test_it_refuses_a_worker_with_more_threads_than_its_pools(settings) -> None:
    settings.WORKER_CONCURRENCY = 8
    with pytest.raises(ImproperlyConfigured, match=r"--concurrency 9 is more than WORKER_CONCURRENCY \(8\)"):
        _worker_start(sender=SimpleNamespace(concurrency=9))


def test_it_sizes_the_bedrock_pool_to_the_worker(settings, monkeypatch) -> None:
    from agent import llm

    settings.WORKER_CONCURRENCY = 12
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AGENT_ROLE_ARN = ""
    engine = llm.BedrockEngine()
    assert engine._chat.client.meta.config.max_pool_connections == 12


def _allowed_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_it_refuses_workers_whose_connections_postgresql_cannot_hold(settings) -> None:
    from agentconsole.celery import database_connections_check

    allowed = _allowed_connections()
    settings.WORKER_CHECK_DB_CONNECTIONS = True
    settings.WORKER_PROCESSES = 2
    settings.WORKER_CONCURRENCY = allowed // 2  # each process also keeps its heartbeat's connection
    needed = 2 * (allowed // 2 + 1)
    with pytest.raises(ImproperlyConfigured, match=rf"= {needed} database connections, .*\({allowed}:"):
        database_connections_check()
    with pytest.raises(ImproperlyConfigured, match=r"WORKER_PROCESSES x \(WORKER_CONCURRENCY \+ 1\)"):
        _worker_start(sender=SimpleNamespace(concurrency=2))

    settings.WORKER_CONCURRENCY = allowed // 2 - 1
    database_connections_check()  # fits: starts
    settings.WORKER_CONCURRENCY = allowed
    settings.WORKER_CHECK_DB_CONNECTIONS = False  # behind a transaction-mode pooler
    database_connections_check()


def test_it_names_each_worker_process_apart() -> None:
    from agentconsole.worker import worker_commands

    commands = worker_commands(3, "agentconsole", ["--loglevel", "INFO"])

    assert [c[c.index("--hostname") + 1] for c in commands] == ["worker1@%h", "worker2@%h", "worker3@%h"]
    for command in commands:
        assert command[command.index("--pool") + 1] == "threads"
        assert command[command.index("-Q") + 1] == "agentconsole"
        assert command[-2:] == ["--loglevel", "INFO"]
        assert "--concurrency" not in command  # WORKER_CONCURRENCY, through CELERY_WORKER_CONCURRENCY
