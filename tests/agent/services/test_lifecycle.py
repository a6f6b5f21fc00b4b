from __future__ import annotations

import itertools
import re

import pytest

from agent.lifecycle import (
    ACTION_INITIAL,
    ACTION_TRANSITION_NOT_ALLOWED,
    ACTION_TRANSITIONS,
    RUN_CLAIMABLE,
    RUN_FINAL,
    RUN_TRANSITION_NOT_ALLOWED,
    RUN_TRANSITIONS,
    action_transition_check,
    run_transition_check,
)
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_settle
from agent.tools.base import Observation
from agentconsole.errors import InvalidTransition
from tests.factories import ProposedActionFactory

RUN = AgentRun.Status
ACTION = ProposedAction.Status


def test_it_gives_every_status_a_row_and_only_known_targets() -> None:
    assert set(RUN_TRANSITIONS) == set(RUN.values)
    assert set(ACTION_TRANSITIONS) == set(ACTION.values)
    assert set().union(*RUN_TRANSITIONS.values()) <= set(RUN.values)
    assert set().union(*ACTION_TRANSITIONS.values()) <= set(ACTION.values)
    assert set(ACTION.values) >= ACTION_INITIAL


def test_it_derives_the_status_sets_from_the_table() -> None:
    assert {RUN.COMPLETED, RUN.ESCALATED, RUN.TAKEN_OVER} == RUN_FINAL
    assert {RUN.QUEUED, RUN.RUNNING, RUN.AWAITING_APPROVAL} == RUN_CLAIMABLE
    assert all(RUN.TAKEN_OVER in RUN_TRANSITIONS[status] for status in RUN_CLAIMABLE)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(RUN.values, RUN.values)))
def test_it_allows_exactly_the_run_moves_of_the_table(current: str, target: str) -> None:
    if target in RUN_TRANSITIONS[current]:
        run_transition_check(current=current, target=target)
        return
    with pytest.raises(
        InvalidTransition, match=re.escape(RUN_TRANSITION_NOT_ALLOWED.format(current=current, target=target))
    ):
        run_transition_check(current=current, target=target)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(ACTION.values, ACTION.values)))
def test_it_allows_exactly_the_action_moves_of_the_table(current: str, target: str) -> None:
    if target in ACTION_TRANSITIONS[current]:
        action_transition_check(current=current, target=target)
        return
    message = ACTION_TRANSITION_NOT_ALLOWED.format(current=current, target=target)
    with pytest.raises(InvalidTransition, match=re.escape(message)):
        action_transition_check(current=current, target=target)


@pytest.mark.django_db
def test_it_refuses_to_settle_a_call_twice_and_changes_nothing() -> None:
    action = ProposedActionFactory(status=ACTION.EXECUTED)
    with pytest.raises(
        InvalidTransition, match=re.escape(ACTION_TRANSITION_NOT_ALLOWED.format(current="executed", target="failed"))
    ):
        proposed_action_settle(action=action, status=ACTION.FAILED, result=Observation.failure("upstream_error", "x"))
    action.refresh_from_db()
    assert action.status == ACTION.EXECUTED
