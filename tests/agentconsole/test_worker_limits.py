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
