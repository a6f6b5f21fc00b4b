"""The run's transcript: every model turn and tool call, persisted as it happens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agent.models import AgentRun, Step

if TYPE_CHECKING:
    from agent.llm.conversation import ModelTurn


def run_steps(run: AgentRun) -> list[Step]:
    """The run's transcript in order: read once for this loaded run, then kept current by step_append, so a worker
    builds each turn's conversation from what it holds instead of reading the transcript again."""
    steps = run.__dict__.get("_transcript")
    if steps is None:
        steps = list(Step.objects.filter(run=run).order_by("index"))
        run.__dict__["_transcript"] = steps
    return steps


def _next_index(run: AgentRun) -> int:
    steps = run.__dict__.get("_transcript")
    if steps is not None:
        return steps[-1].index + 1 if steps else 0
    last = run.steps.order_by("-index").values_list("index", flat=True).first()
    return 0 if last is None else last + 1


def _new_step(run: AgentRun, index: int, kind: str, content: str = "", **fields: Any) -> Step:
    step = Step(run=run, index=index, turn=run.turns, kind=kind, content=content, **fields)
    # The run is loaded and the database enforces the unique index: validating them here would cost a query
    # each on the hottest path of the loop.
    step.full_clean(exclude=["run"], validate_unique=False, validate_constraints=False)
    return step


def _held(run: AgentRun, steps: list[Step]) -> None:
    held = run.__dict__.get("_transcript")
    if held is not None:
        held.extend(steps)


def step_append(*, run: AgentRun, kind: str, content: str = "", **fields: Any) -> Step:
    """Persist one transcript entry now, so anyone watching sees it appear."""
    step = _new_step(run, _next_index(run), kind, content, **fields)
    step.save()
    _held(run, [step])
    return step


@transaction.atomic
def agent_run_record_turn(*, run: AgentRun, turn: ModelTurn, engine: str, abnormal: str = "") -> bool:
    """Persist a model turn: its thought (with tokens and latency) and one action step per tool call. False, and
    nothing recorded, when this worker's lease is gone (the turn outlived it; the worker holding the run asks
    again): the check is the condition of the UPDATE that counts the turn, not one more statement.

    A turn that ended abnormally (`abnormal` says why: a guardrail, a token limit, a filter) is kept as one final
    step carrying the reason and none of its tool calls, so nothing it asked for can ever run."""
    recorded = AgentRun.objects.filter(pk=run.pk, lease_token=run.lease_token).update(
        turns=F("turns") + 1,
        tokens_in=F("tokens_in") + turn.tokens_in,
        tokens_out=F("tokens_out") + turn.tokens_out,
        cache_read_tokens=F("cache_read_tokens") + turn.cache_read_tokens,
        cache_write_tokens=F("cache_write_tokens") + turn.cache_write_tokens,
        engine=engine,
        updated_at=timezone.now(),
    )
    if not recorded:
        return False
    # The worker holding the lease is the only writer of these: the loaded run follows them without a read.
    run.turns += 1
    run.tokens_in += turn.tokens_in
    run.tokens_out += turn.tokens_out
    run.cache_read_tokens += turn.cache_read_tokens
    run.cache_write_tokens += turn.cache_write_tokens
    run.engine = engine
    measured = {
        "latency_ms": turn.latency_ms,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "stop_reason": turn.stop_reason[:64],
    }
    index = _next_index(run)
    if abnormal:
        calls = [{"name": c.name, "args": c.args} for c in turn.tool_calls]
        steps = [
            _new_step(
                run,
                index,
                Step.Kind.FINAL,
                turn.text,
                tool_output={"abnormal_stop": abnormal, "unused_tool_calls": calls},
                **measured,
            )
        ]
    elif turn.tool_calls:
        steps = [_new_step(run, index, Step.Kind.THOUGHT, turn.text, **measured)]
        for offset, call in enumerate(turn.tool_calls, start=1):
            steps.append(
                _new_step(
                    run,
                    index + offset,
                    Step.Kind.ACTION,
                    tool_name=call.name[:64],
                    tool_call_id=call.id[:100],
                    tool_input=call.args,
                )
            )
    else:
        steps = [_new_step(run, index, Step.Kind.FINAL, turn.text, **measured)]
    Step.objects.bulk_create(steps)  # one INSERT for the turn
    _held(run, steps)
    return True
