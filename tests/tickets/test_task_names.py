from __future__ import annotations

import inspect

from celery import current_app

from tickets import tasks
from tickets.helpdesk import CONTEXT_REFRESH_TASK


def test_it_sends_the_context_refresh_by_the_name_the_worker_registers() -> None:
    assert tasks.__name__ == "tickets.tasks"
    task = current_app.tasks[CONTEXT_REFRESH_TASK]  # KeyError: no task has that name; the message would be dropped
    inspect.signature(task.run).bind(1)  # TypeError: the task does not take a ticket id
