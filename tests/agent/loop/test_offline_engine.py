from __future__ import annotations

import pytest

from agent.llm.conversation import ESCALATE_TOOL, Conversation, Exchange, ToolCall, ToolResult
from agent.llm.offline import OfflineEngine
from agent.playbook import playbook_errors

PLAYBOOK = [
    {"tool": "run_sql", "why": "read", "args": {"query": "SELECT * FROM support_tenant_overview"}},
    {
        "tool": "reset_tenant_cache",
        "args": {"tenant_id": "{tenant_id}"},
        "alternative": {"tool": "add_private_note", "args": {"body": "Could not reset. {findings}"}},
    },
    {"tool": "reply_to_customer", "args": {"body": "Fixed for {requester_email}"}},
]


VARIABLES = {"tenant_id": "acme", "requester_email": "ops@acme.example", "findings": "• support_tenant_overview: 1 row"}


def _conversation(*exchanges: Exchange, playbook=PLAYBOOK, variables: dict | None = None) -> Conversation:
    return Conversation(
        system_prompt="s",
        ticket_prompt="t",
        exchanges=list(exchanges),
        playbook=playbook,
        variables={**VARIABLES, **(variables or {})},
    )


def _after(call_id: str, name: str, observation: dict) -> Exchange:
    return Exchange(text="", tool_calls=[ToolCall(call_id, name, {})], results=[ToolResult(call_id, name, observation)])


def test_it_starts_with_the_first_step_and_says_it_is_not_an_llm() -> None:
    engine = OfflineEngine()
    turn = engine.next_turn(_conversation(), [])
    assert engine.is_llm is False
    assert [(c.id, c.name, c.args) for c in turn.tool_calls] == [
        ("rb-0-0-main", "run_sql", {"query": "SELECT * FROM support_tenant_overview"})
    ]


def test_it_fills_templates_from_bound_values_and_findings() -> None:
    read = _after("rb-0-0-main", "run_sql", {"ok": True, "data": {"rows": [["acme", 7]]}})
    turn = OfflineEngine().next_turn(_conversation(read), [])
    assert turn.tool_calls[0].args == {"tenant_id": "acme"}
    failed = _after("rb-1-0-main", "reset_tenant_cache", {"ok": False, "error_type": "refused", "message": "429"})
    turn = OfflineEngine().next_turn(_conversation(read, failed), [])
    assert turn.tool_calls[0].name == "add_private_note"
    assert turn.tool_calls[0].args["body"] == "Could not reset. • support_tenant_overview: 1 row"
    done = _after("rb-1-0-main", "reset_tenant_cache", {"ok": True, "data": {}})
    assert OfflineEngine().next_turn(_conversation(read, done), []).tool_calls[0].args == {
        "body": "Fixed for ops@acme.example"
    }


def test_it_escalates_rather_than_fill_a_value_the_ticket_does_not_have() -> None:
    done = _after("rb-1-0-main", "reset_tenant_cache", {"ok": True, "data": {}})
    turn = OfflineEngine().next_turn(_conversation(done, variables={"requester_email": ""}), [])
    [call] = turn.tool_calls
    assert call.name == ESCALATE_TOOL
    assert "needs {requester_email}" in call.args["reason"] and "no e-mail for the requester" in call.args["reason"]


def test_it_quotes_values_inside_sql_and_log_patterns() -> None:
    playbook = [
        {"tool": "run_sql", "args": {"query": "SELECT 1 FROM support_tenant_users WHERE email = '{requester_email}'"}},
        {"tool": "search_logs", "args": {"query": 'login_failed "{requester_email}"'}},
    ]
    values = {"requester_email": "o'brien\"x@acme.example"}
    turn = OfflineEngine().next_turn(_conversation(playbook=playbook, variables=values), [])
    assert turn.tool_calls[0].args["query"].endswith("WHERE email = 'o''brien\"x@acme.example'")
    read = _after("rb-0-0-main", "run_sql", {"ok": True, "data": {"rows": []}})
    turn = OfflineEngine().next_turn(_conversation(read, playbook=playbook, variables=values), [])
    assert turn.tool_calls[0].args["query"] == 'login_failed "o\'brien\\"x@acme.example"'


def test_it_retries_a_retryable_error_once_then_takes_the_alternative() -> None:
    transient = {"ok": False, "error_type": "upstream_error", "message": "503", "retryable": True}
    turn = OfflineEngine().next_turn(_conversation(_after("rb-1-0-main", "reset_tenant_cache", transient)), [])
    assert turn.tool_calls[0].id == "rb-1-1-main"
    turn = OfflineEngine().next_turn(_conversation(_after("rb-1-1-main", "reset_tenant_cache", transient)), [])
    assert (turn.tool_calls[0].id, turn.tool_calls[0].name) == ("rb-1-0-alt", "add_private_note")


def test_it_escalates_with_the_reviewers_reason_after_a_rejection() -> None:
    rejected = {"ok": False, "error_type": "rejected", "message": "A reviewer rejected this call. Their reason: VIP"}
    turn = OfflineEngine().next_turn(_conversation(_after("rb-2-0-main", "reply_to_customer", rejected)), [])
    [call] = turn.tool_calls
    assert call.name == ESCALATE_TOOL
    assert "Their reason: VIP" in call.args["reason"]


def test_it_finishes_after_the_last_step_and_escalates_without_a_playbook() -> None:
    done = _after("rb-2-0-main", "reply_to_customer", {"ok": True, "data": {}})
    assert OfflineEngine().next_turn(_conversation(done), []).tool_calls == []
    assert OfflineEngine().next_turn(_conversation(playbook=[]), []).tool_calls[0].name == ESCALATE_TOOL


COND_PLAYBOOK = [
    {"tool": "search_logs", "args": {"query": "cache_error"}},
    {
        "tool": "reset_tenant_cache",
        "args": {"tenant_id": "{tenant_id}"},
        "when": {"tool": "search_logs", "field": "count", "above": 0},
    },
    {"tool": "reply_to_customer", "args": {"body": "Reset done."}, "when": {"tool": "reset_tenant_cache"}},
    {"tool": "add_private_note", "args": {"body": "Checked the cache: {findings}"}},
]


def test_it_runs_a_conditional_step_only_when_what_was_found_satisfies_it() -> None:
    found = _after("rb-0-0-main", "search_logs", {"ok": True, "data": {"count": 3, "events": []}})
    turn = OfflineEngine().next_turn(_conversation(found, playbook=COND_PLAYBOOK), [])
    assert [(c.id, c.name) for c in turn.tool_calls] == [("rb-1-0-main", "reset_tenant_cache")]


def test_it_skips_steps_whose_condition_does_not_hold() -> None:
    nothing = _after("rb-0-0-main", "search_logs", {"ok": True, "data": {"count": 0, "events": []}})
    turn = OfflineEngine().next_turn(_conversation(nothing, playbook=COND_PLAYBOOK), [])
    # The reset does not apply, so neither does the reply that depends on it: straight to the note.
    assert [(c.id, c.name) for c in turn.tool_calls] == [("rb-3-0-main", "add_private_note")]
    assert "Skipped runbook step 2 (reset_tenant_cache): search_logs found count = 0, needed above 0." in turn.text
    assert "Skipped runbook step 3 (reply_to_customer): reset_tenant_cache has not run." in turn.text


def test_it_escalates_when_a_step_that_must_apply_does_not() -> None:
    playbook = [COND_PLAYBOOK[0], {**COND_PLAYBOOK[1], "otherwise": "escalate"}]
    nothing = _after("rb-0-0-main", "search_logs", {"ok": True, "data": {"count": 0}})
    [call] = OfflineEngine().next_turn(_conversation(nothing, playbook=playbook), []).tool_calls
    assert call.name == ESCALATE_TOOL
    assert "Runbook step 2 (reset_tenant_cache) does not apply: search_logs found count = 0" in call.args["reason"]


def test_it_writes_texts_from_what_ran_not_from_the_playbook() -> None:
    playbook = [
        {"tool": "extend_trial", "args": {"tenant_id": "{tenant_id}", "days": 7}},
        {"tool": "reply_to_customer", "args": {"body": "Extended by {extend_trial.days} days."}},
    ]
    edited = {"ok": True, "data": {"trial_ends_at": "x"}, "meta": {"executed_args": {"tenant_id": "acme", "days": 14}}}
    turn = OfflineEngine().next_turn(
        _conversation(_after("rb-0-0-main", "extend_trial", edited), playbook=playbook), []
    )
    assert turn.tool_calls[0].args == {"body": "Extended by 14 days."}


def test_it_escalates_rather_than_send_a_text_with_a_value_nothing_provided() -> None:
    playbook = [
        {"tool": "search_logs", "args": {"query": "x"}},
        {"tool": "reply_to_customer", "args": {"body": "Extended by {extend_trial.days} days."}},
    ]
    read = _after("rb-0-0-main", "search_logs", {"ok": True, "data": {"count": 1}})
    [call] = OfflineEngine().next_turn(_conversation(read, playbook=playbook), []).tool_calls
    assert call.name == ESCALATE_TOOL
    assert "needs {extend_trial.days}" in call.args["reason"]


@pytest.mark.parametrize(
    ("playbook", "error"),
    [
        ({"tool": "x"}, "A playbook is a list of steps"),
        ([{"args": {}}], "Step 1 needs a tool name."),
        ([{"tool": "x", "when": {"field": "count", "above": 0}}], '"when" needs the tool'),
        ([{"tool": "x", "when": {"tool": "y", "field": "count"}}], "needs one of above"),
        ([{"tool": "x", "otherwise": "retry"}], '"otherwise" is "skip" or "escalate"'),
        ([{"tool": "x", "alternative": {"args": {}}}], "Step 1's alternative needs a tool name."),
    ],
)
def test_it_names_what_is_wrong_with_a_playbook(playbook, error) -> None:
    assert any(error in message for message in playbook_errors(playbook))
    assert playbook_errors([{"tool": "x", "when": {"tool": "y", "field": "count", "above": 0}}]) == []
