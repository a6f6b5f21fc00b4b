"""The agent's metrics and traces, kept out of the loop: small helpers the loop, the tasks and the services call.

Traces follow OpenTelemetry's GenAI semantic conventions, so LLM-observability tools (Langfuse, Phoenix, Datadog,
Honeycomb) read them as agent traces:
- one trace per run: its id and its root span's id are derived from the run, so the many Celery tasks that work
  a run (hours apart when a reviewer is slow) all add to one trace; the root span `invoke_agent agent-console` is
  exported when the run ends, spanning from its creation to its end;
- one `agent.turn` span per task, one `chat <model>` span per model call (model, tokens, cache tokens, stop
  reason), one `execute_tool <tool>` span per tool call the model made (the gate's decision and, when it ran, the
  call) and one `verify <tool>` span per verification.

Metrics are prometheus-client counters and histograms counted in the process that does the work (see
agentconsole/metrics.py), plus state gauges read from the database when /metrics is scraped.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.exceptions import Retry
from django.conf import settings
from django.db import models
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from agentconsole import rawsql, tracing
from agentconsole.logs import log_context
from agentconsole.metrics import state_collector_register

if TYPE_CHECKING:
    from agent.llm.conversation import Conversation, Engine, ModelTurn
    from agent.models import AgentRun, ProposedAction, Step
    from agent.tools.base import Observation

logger = logging.getLogger(__name__)

AGENT_NAME = "agent-console"
OFFLINE_PROVIDER = "agentconsole.offline"  # the deterministic runbook follower: not a GenAI provider

# --- Process metrics ---------------------------------------------------------------------------------------------

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

TURNS = Counter("agentconsole_turns", "Agent turns (one Celery task each) by outcome.", ["outcome"])
TURN_SECONDS = Histogram(
    "agentconsole_turn_duration_seconds", "Time one turn took in a worker.", ["outcome"], buckets=_LATENCY_BUCKETS
)
MODEL_CALLS = Counter("agentconsole_model_calls", "Model calls by model and outcome.", ["model", "outcome"])
MODEL_SECONDS = Histogram(
    "agentconsole_model_latency_seconds", "Latency of one model call.", ["model"], buckets=_LATENCY_BUCKETS
)
MODEL_TOKENS = Counter(
    "agentconsole_model_tokens",
    "Model tokens by kind: input (not cached), output, cache_read, cache_write.",
    ["model", "kind"],
)
MODEL_COST = Counter(
    "agentconsole_model_cost_usd",
    "Estimated model cost in US dollars (BEDROCK_*_USD_PER_MTOK, BEDROCK_MODEL_PRICES).",
    ["model"],
)
TOOL_CALLS = Counter(
    "agentconsole_tool_calls",
    "Tool calls the model made, by the gate's and the tool's outcome: ok, proposed, dry_run, or the error type.",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    "agentconsole_tool_duration_seconds", "Time from the gate's decision to the observation.", ["tool"],
    buckets=_LATENCY_BUCKETS,
)  # fmt: skip
VERIFICATIONS = Counter("agentconsole_verifications", "Verifications of writes by outcome.", ["tool", "outcome"])
VERIFICATION_FAILURES = Counter(
    "agentconsole_verification_failures", "Writes whose verification failed (the run escalates).", ["tool"]
)
RUNS_FINISHED = Counter("agentconsole_runs_finished", "Runs that reached a final status.", ["status", "phase"])
APPROVAL_SECONDS = Histogram(
    "agentconsole_approval_latency_seconds",
    "Time from a proposal to a reviewer's decision.",
    ["decision"],
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600),
)
APPROVAL_SLA_BREACHES = Counter(
    "agentconsole_approval_sla_breaches", "Proposals that waited longer than their approval SLA.", ["workflow"]
)


def _model_label(engine: Engine) -> str:
    return getattr(engine, "model_id", None) or engine.name


def _cost_usd(turn: ModelTurn, engine: str) -> float:
    from agent.pricing import Usage, cost_usd

    usage = Usage(turn.tokens_in, turn.tokens_out, turn.cache_read_tokens, turn.cache_write_tokens)
    return cost_usd(engine=engine, usage=usage)


# --- One trace per run -------------------------------------------------------------------------------------------


def run_trace_ids(run_id: int, created_at: datetime) -> tuple[int, int]:
    """The run's trace id and root span id: stable for the run, unique across installations in practice."""
    digest = hashlib.sha256(f"agent-console run {run_id} {created_at.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def _run_context(run_id: int, created_at: datetime) -> Context:
    trace_id, span_id = run_trace_ids(run_id, created_at)
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def _root_span_emit(run: AgentRun) -> None:
    """The run's root span, from creation to its end, with the ids every turn span already points to."""
    trace_id, span_id = run_trace_ids(run.pk, run.created_at)
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": AGENT_NAME,
        "gen_ai.conversation.id": str(run.pk),
        "agentconsole.run.id": run.pk,
        "agentconsole.ticket.id": run.ticket_id,
        "agentconsole.run.status": run.status,
        "agentconsole.run.phase": run.phase,
        "agentconsole.run.turns": run.turns,
        "agentconsole.workflow": run.workflow.slug if run.workflow_id else "",
        "gen_ai.usage.input_tokens": run.tokens_in,
        "gen_ai.usage.output_tokens": run.tokens_out,
    }
    with tracing.fixed_ids(trace_id, span_id):
        root = tracing.tracer().start_span(
            f"invoke_agent {AGENT_NAME}", context=Context(), attributes=attributes, start_time=_ns(run.created_at)
        )
    if run.status != "completed":
        root.set_status(Status(StatusCode.ERROR, run.status))
    root.end(end_time=_ns(run.finished_at or timezone.now()))


SUPERSEDED = "superseded"


@dataclass
class _Scope:
    run_id: int
    outcome: str = "error"


def run_task(task: Callable[..., str]) -> Callable[..., str]:
    """Decorates the Celery task that advances a run: log ids, the turn's span and its metrics.

    Every log line of the task carries run_id and ticket_id (task_id comes from the task signals), the turn span
    joins the run's trace, and when this task ended the run the run's root span is exported.

    A message carrying a dispatch token that is no longer the run's (a newer dispatch replaced it, or the run is
    gone) is not a turn: it returns "superseded" at once. The same read gives the ids and the run's current token,
    one statement on every turn's path instead of two.
    """

    @functools.wraps(task)
    def wrapper(self: Any, run_id: int, dispatch_token: str = "", *args: Any, **kwargs: Any) -> str:
        row = _turn_read(run_id)
        if dispatch_token and (row is None or row["dispatch_token"] != dispatch_token):
            return SUPERSEDED
        if row is None:
            return task(self, run_id, dispatch_token, *args, **kwargs)
        started, started_at = time.monotonic(), timezone.now()
        outcome = "error"
        with (
            log_context(run_id=run_id, ticket_id=row["ticket_id"]),
            tracing.span(
                "agent.turn",
                context=_run_context(run_id, row["created_at"]),
                attributes={
                    "gen_ai.conversation.id": str(run_id),
                    "gen_ai.agent.name": AGENT_NAME,
                    "agentconsole.run.id": run_id,
                    "agentconsole.ticket.id": row["ticket_id"],
                    "celery.task_id": getattr(self.request, "id", None),
                    "celery.retries": getattr(self.request, "retries", 0),
                },
            ) as current,
        ):
            try:
                outcome = task(self, run_id, dispatch_token, *args, **kwargs)
                return outcome
            except Retry:
                outcome = "retry"
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                elapsed = time.monotonic() - started
                current.set_attribute("agentconsole.turn.outcome", outcome)
                TURNS.labels(outcome).inc()
                TURN_SECONDS.labels(outcome).observe(elapsed)
                logger.info("turn %s", outcome, extra={"outcome": outcome, "duration_ms": int(elapsed * 1000)})
                if outcome == "done" and tracing.exporting():  # the root span's read, only when it is exported
                    _root_span_if_ended_here(run_id, started_at)

    return wrapper


_TURN_READ = 'SELECT ticket_id, created_at, dispatch_token FROM "agent_agentrun" WHERE id = %s'


def _turn_read(run_id: int) -> dict[str, Any] | None:
    """The run's ticket id, creation time and dispatch token, or None when it is gone. Written by hand on
    PostgreSQL: building the same SELECT with the ORM cost ~8% of a worker's CPU per turn (py-spy under
    bench/throughput.py), several times sending it. psycopg returns created_at aware, as the ORM does."""
    from agent.models import AgentRun

    if not rawsql.postgresql():
        return AgentRun.objects.filter(pk=run_id).values("ticket_id", "created_at", "dispatch_token").first()
    rows = rawsql.execute(_TURN_READ, [run_id])
    if not rows:
        return None
    ticket_id, created_at, token = rows[0]
    return {"ticket_id": ticket_id, "created_at": created_at, "dispatch_token": token}


def _root_span_if_ended_here(run_id: int, started_at: datetime) -> None:
    from agent.models import AgentRun

    try:
        run = AgentRun.objects.select_related("workflow").get(pk=run_id)
        # A redelivered message for a run that had already ended also says "done": only the ending task exports.
        if run.finished_at is not None and run.finished_at >= started_at:
            _root_span_emit(run)
    except Exception:
        logger.warning("could not export the run's root span", exc_info=True)


# --- Model calls -------------------------------------------------------------------------------------------------


def model_call(engine: Engine, conversation: Conversation, tools: list[dict[str, Any]]) -> ModelTurn:
    """engine.next_turn inside a `chat <model>` span, with its latency, tokens and cost counted."""
    model = _model_label(engine)
    provider = "aws.bedrock" if engine.is_llm else OFFLINE_PROVIDER
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if engine.is_llm:
        attributes["gen_ai.request.max_tokens"] = settings.BEDROCK_MAX_OUTPUT_TOKENS
        attributes["gen_ai.request.temperature"] = 0.0
    started = time.monotonic()
    with tracing.span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes) as current:
        try:
            turn = engine.next_turn(conversation, tools)
        except Exception as exc:
            MODEL_CALLS.labels(model, "error").inc()
            current.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            MODEL_SECONDS.labels(model).observe(time.monotonic() - started)
        finish = turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn")
        current.set_attributes(
            {
                "gen_ai.response.model": model,
                "gen_ai.response.finish_reasons": [finish],
                "gen_ai.usage.input_tokens": turn.tokens_in,
                "gen_ai.usage.output_tokens": turn.tokens_out,
                "gen_ai.usage.cache_read.input_tokens": turn.cache_read_tokens,
                "gen_ai.usage.cache_creation.input_tokens": turn.cache_write_tokens,
                "agentconsole.tool_calls": len(turn.tool_calls),
            }
        )
    MODEL_CALLS.labels(model, "ok").inc()
    uncached = max(0, turn.tokens_in - turn.cache_read_tokens - turn.cache_write_tokens)
    for kind, count in (
        ("input", uncached),
        ("output", turn.tokens_out),
        ("cache_read", turn.cache_read_tokens),
        ("cache_write", turn.cache_write_tokens),
    ):
        if count:
            MODEL_TOKENS.labels(model, kind).inc(count)
    cost = _cost_usd(turn, engine.name)
    if cost:
        MODEL_COST.labels(model).inc(cost)
    return turn


# --- Tool calls and verifications -------------------------------------------------------------------------------


def _tool_outcome(observation: Observation | None) -> str:
    if observation is None:
        return "proposed"  # waits for a reviewer
    if observation.ok:
        return "dry_run" if isinstance(observation.data, dict) and observation.data.get("dry_run") else "ok"
    return observation.error_type or "error"


class ToolCallRecord:
    def __init__(self, span: trace.Span, tool: str) -> None:
        self.span = span
        self.tool = tool
        self.outcome = "error"

    def observed(self, observation: Observation | None) -> None:
        self.outcome = _tool_outcome(observation)
        self.span.set_attribute("agentconsole.tool.outcome", self.outcome)
        if observation is not None and not observation.ok:
            self.span.set_status(Status(StatusCode.ERROR, observation.error_type))
            self.span.set_attribute("error.type", observation.error_type or "error")


@contextmanager
def tool_call(step: Step) -> Iterator[ToolCallRecord]:
    """One model tool call: the gate's decision and, when it ran, the call. Call .observed() with the result."""
    tool = step.tool_name or "unknown"
    started = time.monotonic()
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": step.tool_call_id,
        "gen_ai.tool.type": "function",
    }
    with tracing.span(f"execute_tool {tool}", attributes=attributes) as current:
        record = ToolCallRecord(current, tool)
        try:
            yield record
        finally:
            TOOL_CALLS.labels(tool, record.outcome).inc()
            TOOL_SECONDS.labels(tool).observe(time.monotonic() - started)


def verification(verify: Callable[..., Observation]) -> Callable[..., Observation]:
    """Decorates Tool.invoke_verify: a `verify <tool>` span and the verification counters."""

    @functools.wraps(verify)
    def wrapper(tool: Any, *args: Any, **kwargs: Any) -> Observation:
        with tracing.span(f"verify {tool.name}", attributes={"gen_ai.tool.name": tool.name}) as current:
            result = verify(tool, *args, **kwargs)
            outcome = "passed" if result.ok else "failed"
            current.set_attribute("agentconsole.verification.outcome", outcome)
            if not result.ok:
                current.set_status(Status(StatusCode.ERROR, result.message[:200]))
                VERIFICATION_FAILURES.labels(tool.name).inc()
            VERIFICATIONS.labels(tool.name, outcome).inc()
            return result

    return wrapper


# --- Runs and approvals ------------------------------------------------------------------------------------------


def run_finished(*, status: str, phase: str) -> None:
    RUNS_FINISHED.labels(status, phase).inc()


def approval_decided(action: ProposedAction, *, decision: str) -> None:
    if action.decided_at is not None:
        APPROVAL_SECONDS.labels(decision).observe(max(0.0, (action.decided_at - action.created_at).total_seconds()))


def approval_sla_breached(*, workflow: str) -> None:
    """For the approval SLA (issue 13): count a proposal that waited past its SLA, once per proposal."""
    APPROVAL_SLA_BREACHES.labels(workflow or "none").inc()


# --- State read at scrape time -----------------------------------------------------------------------------------


def _state_metrics() -> Iterator[Metric]:
    from agent.models import AgentRun, ProposedAction

    runs = GaugeMetricFamily("agentconsole_runs", "Runs by status and phase (all time).", labels=["status", "phase"])
    for row in AgentRun.objects.values("status", "phase").annotate(count=models.Count("id")).order_by():
        runs.add_metric([row["status"], row["phase"]], row["count"])
    yield runs
    pending = GaugeMetricFamily(
        "agentconsole_approvals_pending", "Proposed actions waiting for a reviewer.", labels=["workflow"]
    )
    oldest = GaugeMetricFamily(
        "agentconsole_approval_oldest_pending_age_seconds",
        "Age of the oldest proposed action waiting for a reviewer.",
        labels=["workflow"],
    )
    now = timezone.now()
    rows = (
        ProposedAction.objects.filter(status=ProposedAction.Status.PENDING)
        .values("run__workflow__slug")
        .annotate(count=models.Count("id"), first=models.Min("created_at"))
        .order_by()
    )
    for row in rows:
        workflow = row["run__workflow__slug"] or "none"
        pending.add_metric([workflow], row["count"])
        oldest.add_metric([workflow], (now - row["first"]).total_seconds())
    yield pending
    yield oldest
    yield from _webhook_backlog_metrics(now)


def _webhook_backlog_metrics(now: datetime) -> Iterator[Metric]:
    """Webhook events stored but not applied yet (a partial index keeps this one small read): a backlog that grows,
    or an oldest age past WEBHOOK_EVENT_STALE_SECONDS, means the workers are behind or not taking the messages."""
    from tickets.models import WebhookEvent

    backlog = WebhookEvent.objects.filter(processed_at__isnull=True).aggregate(
        count=models.Count("id"), first=models.Min("received_at")
    )
    waiting = GaugeMetricFamily("agentconsole_webhook_events_unprocessed", "Webhook events no worker has applied yet.")
    waiting.add_metric([], backlog["count"])
    yield waiting
    oldest = GaugeMetricFamily(
        "agentconsole_webhook_event_oldest_unprocessed_age_seconds",
        "Age of the oldest webhook event no worker has applied yet (0 when none waits).",
    )
    oldest.add_metric([], (now - backlog["first"]).total_seconds() if backlog["first"] else 0)
    yield oldest


def state_metrics_register() -> None:
    state_collector_register("agent", _state_metrics)
