"""Done when: the production server and a worker, started as documented, answer /readyz, count the run in
/metrics, log JSON lines with the run's ids and export the run's trace (model and tool spans) over OTLP."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from agent.models import AgentRun
from agent.telemetry import run_trace_ids
from tests.agent.e2e.conftest import wait_for_ticket
from tests.agentconsole.e2e.conftest import BEHIND_TLS, METRICS_TOKEN, exported_spans, metric_value, wait_ready
from tests.bedrock import converse_reply, tool_use
from tests.http_standin import serve
from tests.support import WEBHOOK_URL, signed_headers, zendesk_event

pytestmark = pytest.mark.e2e


@pytest.fixture
def bedrock_standin():
    yield from serve()


@pytest.fixture
def otlp_collector():
    yield from serve()


def _deliver(base_url: str, ticket_id: int) -> tuple[int, str]:
    body = json.dumps(
        zendesk_event(event_id=f"prod-{ticket_id}", ticket_id=ticket_id, organization_id="360001", tags=["stale_cache"])
    ).encode()
    response = httpx.post(
        f"{base_url}{WEBHOOK_URL}",
        content=body,
        headers={**signed_headers(body), **BEHIND_TLS, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"event_id": f"prod-{ticket_id}", "duplicate": False}
    return wait_for_ticket(str(ticket_id)).pk, response.headers["X-Request-ID"]


def test_it_serves_counts_logs_and_traces_a_run_in_production(
    production, company, bedrock_standin, otlp_collector, live_server
):
    company()
    production.env.update(company.env)  # the company's Admin API and logs: the sandbox on the test's live server
    reply = converse_reply({"text": "The cache was reset and verified."}, stop="end_turn", tokens=(900, 40))
    reply["usage"]["cacheReadInputTokens"] = 700
    for answer in (
        converse_reply(
            {"text": "Read the cache state and the logs."},
            tool_use("tu-1", "run_sql", {"query": "SELECT tenant_id, cache_version FROM support_tenant_overview"}),
            tool_use("tu-2", "search_logs", {"query": "cache_error", "minutes": 1440}),
        ),
        converse_reply(
            {"text": "Cache errors: reset it."}, tool_use("tu-3", "reset_tenant_cache", {"tenant_id": "acme"})
        ),
        converse_reply(
            {"text": "Tell the customer."}, tool_use("tu-4", "reply_to_customer", {"body": "Your cache was refreshed."})
        ),
        reply,
    ):
        bedrock_standin.answer(200, answer)
    production.env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        AGENT_LLM_PROVIDER="bedrock",
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock_standin.url,
        BEDROCK_MAX_ATTEMPTS="2",
    )
    # A production key is long and random; the services keep the test key, which the support views are bound to.
    production.run(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)
    )
    production.run("manage.py", "migrate", "--no-input")
    production.run("manage.py", "collectstatic", "--no-input")

    web, base_url = production.web()
    # The first request loads the application in gunicorn's worker: seconds on a loaded machine.
    healthz = httpx.get(f"{base_url}/healthz", timeout=60)
    assert healthz.json() == {"status": "ok"}
    # Sent whole with its length, not chunked: load balancers' health checks read one short answer.
    assert healthz.headers["Content-Length"] == str(len(healthz.content))
    assert "Transfer-Encoding" not in healthz.headers
    unready = httpx.get(f"{base_url}/readyz").json()
    assert unready["checks"]["worker"] == "no recent heartbeat"  # no worker yet

    worker = production.worker("worker1", METRICS_WORKER_ADDRESS="127.0.0.1:0")
    production.scheduler()
    ready = wait_ready(base_url)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "worker": "ok", "broker": "ok"},
    }
    # Static files come from collectstatic's output through WhiteNoise, with hashed, cacheable names.
    login = httpx.get(f"{base_url}/accounts/login/", headers=BEHIND_TLS)
    css = next(part.split('"')[0] for part in login.text.split('href="')[1:] if part.startswith("/static/css/"))
    assert "." in css.rsplit("/", 1)[-1].removesuffix(".css")
    static = httpx.get(f"{base_url}{css}", headers=BEHIND_TLS)
    assert static.status_code == 200 and "max-age=315360000" in static.headers["cache-control"]

    ticket_id, request_id = _deliver(base_url, 71001)
    run = AgentRun.objects.get(ticket_id=ticket_id)
    deadline_run = _wait_final(run)
    assert deadline_run.status == "completed", deadline_run.status_reason

    # Metrics: the web page sums its own processes and the worker's (one host, one multiprocess directory) and
    # reads the state from the database; the worker's own exporter serves its counters.
    assert httpx.get(f"{base_url}/metrics").status_code == 401
    page = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert page.status_code == 200
    text = page.text
    assert metric_value(text, "agentconsole_runs", status="completed", phase="autonomous") == 1
    assert metric_value(text, "agentconsole_runs_finished_total", status="completed") == 1
    assert metric_value(text, "agentconsole_model_calls_total", outcome="ok") == 4
    assert metric_value(text, "agentconsole_model_tokens_total", kind="cache_read") == 700
    assert metric_value(text, "agentconsole_tool_calls_total", tool="reset_tenant_cache", outcome="ok") == 1
    assert metric_value(text, "agentconsole_verifications_total", tool="reset_tenant_cache", outcome="passed") == 1
    assert metric_value(text, "agentconsole_queue_depth", queue="agentconsole") >= 0
    assert metric_value(text, "agentconsole_model_cost_usd_total") > 0
    assert metric_value(text, "agentconsole_turn_duration_seconds_count", outcome="done") == 1

    exporter = next(line["metrics_address"] for line in worker.json_lines() if "metrics_address" in line)
    assert httpx.get(f"http://{exporter}/metrics").status_code == 401
    own = httpx.get(f"http://{exporter}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert metric_value(own, "agentconsole_turns_total", outcome="done") == 1
    assert httpx.get(f"http://{exporter}/healthz").json() == {"status": "ok"}

    # Logs: JSON lines, those of the run's work carrying its run, ticket and task ids.
    lines = worker.json_lines()
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    of_run = [line for line in lines if line.get("run_id") == run.pk]
    assert {line["logger"] for line in of_run} >= {"agent.telemetry", "httpx"}
    assert all(line["ticket_id"] == ticket_id and line["task_id"] for line in of_run)
    assert len({line["task_id"] for line in of_run}) == 4  # one task per model turn
    access = [line for line in web.json_lines() if line["logger"] == "gunicorn.access"]
    assert any(
        f"POST {WEBHOOK_URL}" in line["message"] and f"request_id={request_id}" in line["message"] for line in access
    )

    # Traces: one trace for the run, the model calls and tool calls in it, exported to the collector.
    trace_id, root_id = (
        format(n, f"0{w}x") for n, w in zip(run_trace_ids(run.pk, run.created_at), (32, 16), strict=True)
    )
    spans = _wait_spans(otlp_collector, lambda s: any(x["name"] == "invoke_agent agent-console" for x in s))
    of_trace = [s for s in spans if s["trace_id"] == trace_id]
    names = sorted(s["name"] for s in of_trace)
    assert names.count("chat us.anthropic.claude-sonnet-4-6") == 4
    assert names.count("agent.turn") == 4
    for tool in ("run_sql", "search_logs", "reset_tenant_cache", "reply_to_customer"):
        assert f"execute_tool {tool}" in names
    assert "verify reset_tenant_cache" in names
    [root] = [s for s in of_trace if s["name"] == "invoke_agent agent-console"]
    assert (root["span_id"], root["parent_span_id"]) == (root_id, "")
    assert all(s["parent_span_id"] == root_id for s in of_trace if s["name"] == "agent.turn")
    chats = [s for s in of_trace if s["name"].startswith("chat ")]
    last = next(s for s in chats if s["attributes"]["gen_ai.response.finish_reasons"] == ["end_turn"])
    assert last["attributes"]["gen_ai.provider.name"] == "aws.bedrock"
    assert last["attributes"]["gen_ai.request.model"] == "us.anthropic.claude-sonnet-4-6"
    assert (last["attributes"]["gen_ai.usage.input_tokens"], last["attributes"]["gen_ai.usage.output_tokens"]) == (
        1600,
        40,
    )
    assert last["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 700
    assert sum(s["attributes"]["gen_ai.response.finish_reasons"] == ["tool_use"] for s in chats) == 3
    [reset] = [s for s in of_trace if s["name"] == "execute_tool reset_tenant_cache"]
    assert reset["attributes"]["gen_ai.tool.call.id"] == "tu-3"
    assert reset["attributes"]["agentconsole.tool.outcome"] == "ok"
    assert reset["resource"]["service.name"] == "agent-console"


def _wait_final(run: AgentRun, timeout: float = 60) -> AgentRun:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in {"completed", "escalated", "failed"}:
            return run
        time.sleep(0.2)
    raise AssertionError(
        f"run stuck in {run.status}: {list(run.steps.values_list('kind', 'tool_name', 'tool_output'))}"
    )


def _wait_spans(otlp, done, timeout: float = 20) -> list[dict]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        spans = exported_spans(otlp)
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)
