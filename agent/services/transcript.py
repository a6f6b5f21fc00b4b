"""The run's transcript: every model turn and tool call, persisted as it happens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Step
from agentconsole import rawsql

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


def transcript_hold(run: AgentRun, steps: list[Step]) -> None:
    """The run's transcript, read with its claim: run_steps answers from it."""
    run.__dict__["_transcript"] = steps


def run_actions(run: AgentRun) -> list[ProposedAction]:
    """The run's calls in order (created_at, id): read once for this loaded run (with its claim), then kept current
    by this worker, the only one that creates or settles them while it holds the lease. A reviewer's decision made
    meanwhile is seen by the next advance (their decision resumes the run)."""
    actions = run.__dict__.get("_actions")
    if actions is None:
        actions = list(ProposedAction.objects.filter(run=run).order_by("created_at", "id"))
        run.__dict__["_actions"] = actions
    return actions


def actions_hold(run: AgentRun, actions: list[ProposedAction]) -> None:
    run.__dict__["_actions"] = actions


def action_held(run: AgentRun, action: ProposedAction) -> None:
    """Keep the run's held calls current with one created or settled (the same row replaced, or a new one last)."""
    held = run.__dict__.get("_actions")
    if held is None:
        return
    for position, known in enumerate(held):
        if known.pk == action.pk:
            held[position] = action
            return
    held.append(action)


def _next_index(run: AgentRun) -> int:
    steps = run.__dict__.get("_transcript")
    if steps is not None:
        return steps[-1].index + 1 if steps else 0
    last = run.steps.order_by("-index").values_list("index", flat=True).first()
    return 0 if last is None else last + 1


def _new_step(run: AgentRun, index: int, kind: str, content: str = "", **fields: Any) -> Step:
    # No full_clean(): the loop writes these fields from its own constants and clipped values, and the database
    # enforces the rest (lengths, positive counts, the run and the unique index) on the hottest path of the loop.
    return Step(run=run, index=index, turn=run.turns, kind=kind, content=content, **fields)


def _held(run: AgentRun, steps: list[Step]) -> None:
    held = run.__dict__.get("_transcript")
    if held is not None:
        held.extend(steps)


def step_new(run: AgentRun, kind: str, content: str = "", **fields: Any) -> Step:
    """The run's next transcript entry, unsaved (for a statement of the caller's; then step_held)."""
    return _new_step(run, _next_index(run), kind, content, **fields)


def step_held(run: AgentRun, step: Step) -> None:
    """A step just written, kept in the run's held transcript (run_steps)."""
    _held(run, [step])


def step_append(
    *, run: AgentRun, kind: str, content: str = "", guard: tuple[str, list[Any]] | None = None, **fields: Any
) -> Step | None:
    """Persist one transcript entry now, so anyone watching sees it appear. `guard` (PostgreSQL): a statement made
    part of the INSERT (the lease's renewal, leases.lease_renewal); None, nothing written, when it found no row."""
    step = _new_step(run, _next_index(run), kind, content, **fields)
    if guard is not None:
        if not rawsql.insert([step], guard=guard[0], guard_params=guard[1]):
            return None
    else:
        step.save()
    _held(run, [step])
    return step


_RECORD_TURN = (
    'UPDATE "agent_agentrun" SET turns = turns + 1, tokens_in = tokens_in + %s, tokens_out = tokens_out + %s, '
    "cache_read_tokens = cache_read_tokens + %s, cache_write_tokens = cache_write_tokens + %s, engine = %s, "
    "updated_at = %s WHERE id = %s AND lease_token = %s RETURNING id"
)


def _turn_steps(run: AgentRun, turn: ModelTurn, abnormal: str, comments: list[int] | None = None) -> list[Step]:
    """The steps of a model turn numbered `run.turns` (already counted). `comments`: those the turn showed the model
    first, kept on its thought (agent.prompts.comments_shown)."""
    measured = {
        "latency_ms": turn.latency_ms,
        "tokens_in": turn.tokens_in,
        "tokens_out": turn.tokens_out,
        "stop_reason": turn.stop_reason[:64],
    }
    index = _next_index(run)
    if abnormal:
        calls = [{"name": c.name, "args": c.args} for c in turn.tool_calls]
        return [
            _new_step(
                run,
                index,
                Step.Kind.FINAL,
                turn.text,
                tool_output={"abnormal_stop": abnormal, "unused_tool_calls": calls},
                **measured,
            )
        ]
    if turn.tool_calls:
        shown = {"tool_input": {"comments": comments}} if comments is not None else {}
        steps = [_new_step(run, index, Step.Kind.THOUGHT, turn.text, **shown, **measured)]
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
        return steps
    return [_new_step(run, index, Step.Kind.FINAL, turn.text, **measured)]


_TURN_SETS = [
    "turns = turns + 1",
    "tokens_in = tokens_in + %s",
    "tokens_out = tokens_out + %s",
    "cache_read_tokens = cache_read_tokens + %s",
    "cache_write_tokens = cache_write_tokens + %s",
    "engine = %s",
]


def agent_run_final_turn_parts(*, run: AgentRun, turn: ModelTurn, engine: str) -> tuple[list[str], list[Any], Step]:
    """A final turn (text alone, ended normally) as agent_run_record_turn records it, for a statement of the caller's
    that also changes the run's row (PostgreSQL): the SET clauses that count it (no updated_at: the caller's change
    sets it) with their parameters, and its step, unsaved, numbered as the turn counted. Once written:
    agent_run_final_turn_recorded; otherwise agent_run_final_turn_dropped."""
    counts = [turn.tokens_in, turn.tokens_out, turn.cache_read_tokens, turn.cache_write_tokens]
    run.turns += 1
    (step,) = _turn_steps(run, turn, "")
    return list(_TURN_SETS), [*counts, engine], step


def agent_run_final_turn_recorded(*, run: AgentRun, turn: ModelTurn, engine: str, step: Step, step_id: int) -> None:
    rawsql.inserted(step, step_id)
    run.tokens_in += turn.tokens_in
    run.tokens_out += turn.tokens_out
    run.cache_read_tokens += turn.cache_read_tokens
    run.cache_write_tokens += turn.cache_write_tokens
    run.engine = engine
    _held(run, [step])


def agent_run_final_turn_dropped(*, run: AgentRun) -> None:
    run.turns -= 1


def agent_run_record_turn(
    *, run: AgentRun, turn: ModelTurn, engine: str, abnormal: str = "", comments: list[int] | None = None
) -> bool:
    """Persist a model turn: its thought (with tokens and latency) and one action step per tool call. False, and
    nothing recorded, when this worker's lease is gone (the turn outlived it; the worker holding the run asks
    again): the check is the condition of the UPDATE that counts the turn, not one more statement. On PostgreSQL
    the count and the steps are one statement.

    A turn that ended abnormally (`abnormal` says why: a guardrail, a token limit, a filter) is kept as one final
    step carrying the reason and none of its tool calls, so nothing it asked for can ever run. `comments`: the
    ticket's comments the turn showed the model first, kept on its thought for the turns after it."""
    counts = [turn.tokens_in, turn.tokens_out, turn.cache_read_tokens, turn.cache_write_tokens]
    now = timezone.now()
    run.turns += 1  # the steps carry the turn's number; put back when nothing was recorded
    steps = _turn_steps(run, turn, abnormal, comments)
    if rawsql.postgresql():
        recorded = rawsql.insert(
            steps, guard=_RECORD_TURN, guard_params=[*counts, engine, now, run.pk, run.lease_token]
        )
    else:
        with transaction.atomic():
            recorded = bool(
                AgentRun.objects.filter(pk=run.pk, lease_token=run.lease_token).update(
                    turns=F("turns") + 1,
                    tokens_in=F("tokens_in") + turn.tokens_in,
                    tokens_out=F("tokens_out") + turn.tokens_out,
                    cache_read_tokens=F("cache_read_tokens") + turn.cache_read_tokens,
                    cache_write_tokens=F("cache_write_tokens") + turn.cache_write_tokens,
                    engine=engine,
                    updated_at=now,
                )
            )
            if recorded:
                Step.objects.bulk_create(steps)  # one INSERT for the turn
    if not recorded:
        run.turns -= 1
        return False
    # The worker holding the lease is the only writer of these: the loaded run follows them without a read.
    run.tokens_in += turn.tokens_in
    run.tokens_out += turn.tokens_out
    run.cache_read_tokens += turn.cache_read_tokens
    run.cache_write_tokens += turn.cache_write_tokens
    run.engine = engine
    run.updated_at = now
    _held(run, steps)
    return True
