"""Action and draft cards: what a reviewer reads before deciding (arguments, findings, the context it came from)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import sqlglot
from django.utils import timezone

from agent.catalogue import all_tools, get_tool
from agent.findings import finding_of
from agent.models import Notification, ProposedAction, Rating, Step
from agent.selectors.proposals import FollowUp, observation_summary, proposal_follow_up
from tickets.models import TicketComment


def draft_tool_names() -> list[str]:
    """Tools whose calls carry text a reviewer rates as a draft (a note, a reply): they declare a text_arg."""
    return [name for name, tool in all_tools().items() if tool.text_arg]


def _query(tool: str, args: Any) -> tuple[str, str] | None:
    """The query a call carries, in its tool's own language, when the tool declares one."""
    declared = get_tool(tool)
    if declared is None or not declared.query_arg or not isinstance(args, dict):
        return None
    query = args.get(declared.query_arg)
    return (query, declared.query_language) if isinstance(query, str) else None


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def pretty_sql(sql: str) -> str:
    try:
        return sqlglot.transpile(sql, read="postgres", pretty=True)[0]
    except sqlglot.errors.SqlglotError:
        return sql


def _pretty_args(tool: str, args: Any) -> tuple[str, bool]:
    """The args as the reviewer should read them, and whether that text is SQL."""
    query = _query(tool, args)
    if query is not None:
        text, language = query
        return (pretty_sql(text), True) if language == "sql" else (text, False)
    return _pretty_json(args if args is not None else {}), False


def args_line(tool: str, args: Any) -> str:
    """The args on one line, for a collapsed transcript entry."""
    query = _query(tool, args)
    if query is not None:
        text = " ".join(query[0].split())
    elif isinstance(args, dict):
        text = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False, default=str)}" for key, value in args.items())
    else:
        text = json.dumps(args, default=str)
    return text if len(text) <= 140 else text[:139] + "…"


@dataclass(frozen=True)
class Finding:
    """What one call of the agent returned, summarised, with the raw observation one click away."""

    tool: str
    ok: bool
    summary: str
    raw: str


@dataclass(frozen=True)
class DecisionContext:
    """Everything the decision card shows beside the proposal itself."""

    findings: list[Finding]
    follow_up: FollowUp
    state_rows: list[dict[str, Any]] = field(default_factory=list)
    state_read_at: datetime | None = None
    state_message: str = ""
    state_readable: bool = False
    notifications: list[Notification] = field(default_factory=list)


@dataclass(frozen=True)
class ActionCard:
    """One proposal as its card shows it: the row (`action`, for its own fields) and how a reviewer reads it."""

    action: ProposedAction
    pretty_args: str
    args_are_sql: bool
    args_json: str
    args_line: str
    my_rating: Rating | None
    rated_as_draft: bool  # a dry-run note or reply is rated as the drafted text (its step), not again as a call
    is_real_pending: bool
    keep_while_polling: bool
    args_diff: list[tuple[str, Any, Any]]
    pretty_result: str
    sla_overdue: bool
    comments_since: list[TicketComment] = field(default_factory=list)  # what the customer wrote since, if pending
    context: DecisionContext | None = None  # for a pending proposal

    @property
    def dom_id(self) -> str:
        return f"action-{self.action.pk}"


@dataclass(frozen=True)
class StepCard:
    """One transcript step as the console shows it: the row (`step`) and its arguments and answer laid out. The
    layout is made when a template first reads it: a transcript's thoughts, and the calls it folds into "repeated",
    show none (it was a fifth of the ticket page's CPU at 100 steps)."""

    step: Step
    is_draft: bool
    draft_text: str
    draft_public: bool
    my_rating: Rating | None

    @property
    def dom_id(self) -> str:
        return f"step-{self.step.pk}"

    @cached_property
    def laid_out_input(self) -> tuple[str, bool]:
        """The arguments as the reviewer reads them, and whether that text is SQL."""
        return _pretty_args(self.step.tool_name, self.step.tool_input)

    @property
    def pretty_input(self) -> str:
        return self.laid_out_input[0]

    @property
    def input_is_sql(self) -> bool:
        return self.laid_out_input[1]

    @cached_property
    def pretty_output(self) -> str:
        return _pretty_json(self.step.tool_output) if self.step.tool_output is not None else ""


def call_summary(tool: str, args: Any, output: dict[str, Any] | None) -> str:
    """A read's own one-line summary of what it found (Tool.summarize), else the generic one."""
    finding = finding_of(tool, args if isinstance(args, dict) else None, output) if output else None
    return finding.line if finding is not None and finding.ok else observation_summary(output)


def _findings(transcript: list[Step], before_index: int | None) -> list[Finding]:
    """The observations of the run before the proposal (reads, notes, routing): what the agent had found."""
    calls = {s.tool_call_id: s.tool_input for s in transcript if s.kind == Step.Kind.ACTION and s.tool_call_id}
    found = []
    for step in transcript:
        if before_index is not None and step.index >= before_index:
            break
        if step.kind != Step.Kind.OBSERVATION:
            continue
        output = step.tool_output or {}
        found.append(
            Finding(
                tool=step.tool_name,
                ok=bool(output.get("ok")),
                summary=call_summary(step.tool_name, calls.get(step.tool_call_id), output),
                raw=_pretty_json(output.get("data") if output.get("ok") else output),
            )
        )
    return found


def decision_context(
    action: ProposedAction, transcript: list[Step], *, notifications: list[Notification]
) -> DecisionContext:
    """Pure, given the run's transcript: what the agent found, the state diff its tool read, what comes next."""
    before = action.step.index if action.step_id and getattr(action, "step", None) else None
    tool = get_tool(action.tool)
    state = action.current_state or {}
    read_at = state.get("read_at")
    return DecisionContext(
        findings=_findings(transcript, before),
        follow_up=proposal_follow_up(run=action.run, action=action, transcript=transcript),
        state_rows=[row for row in state.get("fields", []) if isinstance(row, dict)] if state else [],
        state_read_at=datetime.fromisoformat(read_at) if state and isinstance(read_at, str) else None,
        state_message="" if not state or state.get("ok") else str(state.get("message", "")),
        state_readable=bool(tool and tool.can_read_current),
        notifications=notifications,
    )


def action_card(
    action: ProposedAction,
    *,
    rating: Rating | None,
    comments_since: list[TicketComment] | None = None,
    context: DecisionContext | None = None,
) -> ActionCard:
    """What the action card shows. Pure: no queries, so views may call it on a service's result."""
    pretty_args, args_are_sql = _pretty_args(action.tool, action.args)
    original = action.original_args
    due = action.sla_due_at
    return ActionCard(
        action=action,
        pretty_args=pretty_args,
        args_are_sql=args_are_sql,
        args_json=_pretty_json(action.args),
        args_line=args_line(action.tool, action.args),
        my_rating=rating,
        rated_as_draft=action.is_dry_run and action.tool in draft_tool_names(),
        is_real_pending=action.status == ProposedAction.Status.PENDING,
        # While the transcript is polled, a card the reviewer may be typing into keeps its DOM (hx-preserve);
        # cards the worker still changes (approved -> executed -> verified) are swapped.
        keep_while_polling=action.status in (ProposedAction.Status.PENDING, ProposedAction.Status.DRY_RUN),
        args_diff=(
            [
                (key, original.get(key), action.args.get(key))
                for key in sorted(set(original) | set(action.args))
                if original.get(key) != action.args.get(key)
            ]
            if isinstance(original, dict)
            else []
        ),
        pretty_result=_pretty_json(action.execution_result) if action.execution_result is not None else "",
        sla_overdue=bool(due and due <= timezone.now()),
        comments_since=comments_since or [],
        context=context,
    )


def delivered(output: dict[str, Any] | None) -> bool:
    """Whether a call's answer says it went out: ok, and not a shadow dry run."""
    if not isinstance(output, dict) or not output.get("ok"):
        return False
    data = output.get("data")
    return not (isinstance(data, dict) and data.get("dry_run"))


def step_delivered(step: Step) -> bool:
    """Whether this note or reply went out, from its observation (one query)."""
    if not step.tool_call_id:
        return False
    output = (
        Step.objects.filter(run_id=step.run_id, kind=Step.Kind.OBSERVATION, tool_call_id=step.tool_call_id)
        .values_list("tool_output", flat=True)
        .first()
    )
    return delivered(output)


def step_card(step: Step, *, rating: Rating | None) -> StepCard:
    """What the transcript shows for one step. Pure, like action_card."""
    tool = get_tool(step.tool_name) if step.kind == Step.Kind.ACTION else None
    text_arg = tool.text_arg if tool else ""
    return StepCard(
        step=step,
        is_draft=bool(text_arg),
        draft_text=(step.tool_input or {}).get(text_arg, "") if text_arg else "",
        draft_public=bool(text_arg and tool.customer_facing),
        my_rating=rating,
    )


def rating_mine(ratings: list[Rating]) -> Rating | None:
    return ratings[0] if ratings else None
