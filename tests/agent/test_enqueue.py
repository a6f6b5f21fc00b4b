from __future__ import annotations

import inspect

import pytest
from celery import current_app

from agent import enqueue, tasks

# Each message the agent sends by name, with arguments of the shape its sender passes.
SENT = {
    enqueue.RUN_ADVANCE: (1, "token"),
    enqueue.ACTION_READ_CURRENT: (1,),
    enqueue.APPROVAL_NOTIFY: (1, "pending"),
    enqueue.TAKE_OVER_NOTE: (1, 2),
    enqueue.EVENT_PROCESS: (1,),
    enqueue.REPLAY_EXECUTE: (1,),
    enqueue.SUITE_RERUN: (1,),
}


@pytest.mark.parametrize("name", sorted(SENT))
def test_it_names_a_task_the_worker_registers_with_arguments_that_fit(name: str) -> None:
    assert tasks.__name__ == "agent.tasks"
    task = current_app.tasks[name]  # KeyError: the name matches no task, and the message would be dropped
    inspect.signature(task.run).bind(*SENT[name])  # TypeError: the task does not take these arguments


def test_it_covers_every_constant_the_module_declares() -> None:
    declared = {value for key, value in vars(enqueue).items() if key.isupper() and isinstance(value, str)}
    assert declared == set(SENT)
