"""The run's transcript: every model turn and tool call, persisted as it happens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from agent.models import AgentRun, Step

if TYPE_CHECKING:
    from agent.llm.conversation import ModelTurn


def step_append(*, run: AgentRun, kind: str, content: str = "", **fields: Any) -> Step:
    """Persist one transcript entry now, so anyone watching sees it appear."""
    last = run.steps.order_by("-index").values_list("index", flat=True).first()
    step = Step(run=run, index=0 if last is None else last + 1, turn=run.turns, kind=kind, content=content, **fields)
    # The run is loaded and the database enforces the unique index: validating them here would cost a query
    # each on the hottest path of the loop.
    step.full_clean(exclude=["run"], validate_unique=False, validate_constraints=False)
    step.save()
    return step


@transaction.atomic
def agent_run_record_turn(*, run: AgentRun, turn: ModelTurn, engine: str, abnormal: str = "") -> bool:
    """Persist a model turn: its thought (with tokens and latency) and one action step per tool call. False, and
    nothing recorded, when this worker's lease is gone (the turn outlived it; the worker holding the run asks
    again): the check is the row lock this takes anyway, not one more statement.

    A turn that ended abnormally (`abnormal` says why: a guardrail, a token limit, a filter) is kept as one final
    step carrying the reason and none of its tool calls, so nothing it asked for can ever run."""
    run = AgentRun.objects.select_for_update().filter(pk=run.pk, lease_token=run.lease_token).first()
    if run is None:
        return False
    run.turns += 1
    run.tokens_in += turn.tokens_in
    run.tokens_out += turn.tokens_out
    run.cache_read_tokens += turn.cache_read_tokens
    run.cache_write_tokens += turn.cache_write_tokens
    run.engine = engine
    run.save(update_fields=["turns", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens", "engine",
                            "updated_at"])  # fmt: skip
    measured = {
        "latency_ms": turn.latency_ms,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "stop_reason": turn.stop_reason[:64],
    }
    if abnormal:
        calls = [{"name": c.name, "args": c.args} for c in turn.tool_calls]
        step_append(
            run=run,
            kind=Step.Kind.FINAL,
            content=turn.text,
            tool_output={"abnormal_stop": abnormal, "unused_tool_calls": calls},
            **measured,
        )
        return True
    if turn.tool_calls:
        step_append(run=run, kind=Step.Kind.THOUGHT, content=turn.text, **measured)
        for call in turn.tool_calls:
            step_append(
                run=run,
                kind=Step.Kind.ACTION,
                tool_name=call.name[:64],
                tool_call_id=call.id[:100],
                tool_input=call.args,
            )
    else:
        step_append(run=run, kind=Step.Kind.FINAL, content=turn.text, **measured)
    return True
