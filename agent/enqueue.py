"""Messages to the agent's Celery tasks, sent by task name.

The tasks are the agent's entry points: a task calls the loop or a service (tasks -> loop -> services). A service
that queues work therefore cannot import agent.tasks back without closing a cycle, so it sends the message by the
task's registered name, here. tests/agent/test_enqueue.py proves every name is a task the worker knows and that
its arguments fit; .importlinter keeps everything but the console from importing agent.tasks.
"""

from __future__ import annotations

from celery import current_app

RUN_ADVANCE = "agent.tasks.agent_run_advance_task"
ACTION_READ_CURRENT = "agent.tasks.proposed_action_read_current_task"
APPROVAL_NOTIFY = "agent.tasks.approval_notify_task"
TAKE_OVER_NOTE = "agent.tasks.agent_run_take_over_note_task"
EVENT_PROCESS = "agent.tasks.zendesk_event_process_task"


def run_advance_send(run_id: int, dispatch_token: str, *, priority: int | None = None) -> None:
    """Raises whatever the broker raised: the caller (agent_run_publish) decides what a failure means."""
    current_app.send_task(RUN_ADVANCE, args=(run_id, dispatch_token), priority=priority)


def event_process_send(event_pk: int) -> None:
    """The webhook's one message: apply the stored event. Raises whatever the broker raised."""
    current_app.send_task(EVENT_PROCESS, args=(event_pk,))


def action_read_current_send(action_id: int) -> None:
    current_app.send_task(ACTION_READ_CURRENT, args=(action_id,))


def approval_notify_send(action_id: int, kind: str) -> None:
    current_app.send_task(APPROVAL_NOTIFY, args=(action_id, kind))


def take_over_note_send(run_id: int, user_id: int) -> None:
    current_app.send_task(TAKE_OVER_NOTE, args=(run_id, user_id))


REPLAY_EXECUTE = "agent.tasks.replay_execute_task"


def replay_execute_send(replay_id: int) -> None:
    current_app.send_task(REPLAY_EXECUTE, args=(replay_id,))


SUITE_RERUN = "agent.tasks.suite_rerun_task"


def suite_rerun_send(replay_id: int) -> None:
    current_app.send_task(SUITE_RERUN, args=(replay_id,))
