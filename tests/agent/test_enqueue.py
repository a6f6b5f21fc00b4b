from __future__ import annotations

import inspect
import os

import pytest
from celery import current_app

from agent import enqueue, tasks
from tests.support import queued_task_messages, webhook_events_process

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


def _waiting(broker) -> list[dict]:
    messages = queued_task_messages(broker)
    broker.flushdb()
    return messages


def test_it_pushes_the_webhook_message_as_send_task_would_and_a_worker_runs_it(broker, db) -> None:
    current_app.send_task(enqueue.EVENT_PROCESS, args=(7,))
    (celery_sent,) = _waiting(broker)
    enqueue.event_process_send(7)
    (pushed,) = _waiting(broker)

    def shape(message: dict) -> dict:
        """Everything but what differs from one message to the next (ids, the sender)."""
        ids = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}
        return {
            **message,
            "headers": {k: v for k, v in message["headers"].items() if k not in ids},
            "properties": {k: v for k, v in message["properties"].items() if k not in ids},
        }

    assert shape(pushed) == shape(celery_sent)
    assert pushed["headers"]["id"] == pushed["headers"]["root_id"] == pushed["properties"]["correlation_id"]
    assert pushed["headers"]["origin"].startswith(f"gen{os.getpid()}@")
    enqueue.event_process_send(7)
    assert webhook_events_process() == ["already processed"]  # decoded and run: no event 7 in this database


@pytest.mark.parametrize("priority", [None, 9])
def test_it_pushes_a_runs_next_turn_as_send_task_would_onto_its_prioritys_list(broker, priority) -> None:
    current_app.send_task(enqueue.RUN_ADVANCE, args=(5, "token"), priority=priority)
    celery_keys = {key for key in broker.scan_iter() if broker.type(key) == b"list"}
    (celery_sent,) = _waiting(broker)
    enqueue.run_advance_send(5, "token", priority=priority)
    pushed_keys = {key for key in broker.scan_iter() if broker.type(key) == b"list"}
    (pushed,) = _waiting(broker)

    assert pushed_keys == celery_keys and len(pushed_keys) == 1
    assert _shape(pushed) == _shape(celery_sent)
    assert pushed["properties"]["priority"] == (priority or 0)


@pytest.mark.parametrize(
    ("send", "name", "args"),
    [
        (enqueue.action_read_current_send, enqueue.ACTION_READ_CURRENT, (3,)),
        (enqueue.approval_notify_send, enqueue.APPROVAL_NOTIFY, (3, "pending")),
    ],
)
def test_it_pushes_a_proposals_messages_as_send_task_would(broker, send, name, args) -> None:
    current_app.send_task(name, args=args)
    (celery_sent,) = _waiting(broker)
    send(*args)
    (pushed,) = _waiting(broker)

    assert _shape(pushed) == _shape(celery_sent)
    assert pushed["headers"]["task"] == name and pushed["headers"]["argsrepr"] == repr(args)


def _shape(message: dict) -> dict:
    """Everything but what differs from one message to the next (ids, the sender, the parent task)."""
    ids = {"id", "root_id", "parent_id", "origin", "correlation_id", "reply_to", "delivery_tag"}
    return {
        **message,
        "headers": {k: v for k, v in message["headers"].items() if k not in ids},
        "properties": {k: v for k, v in message["properties"].items() if k not in ids},
    }


def test_it_sends_through_celery_when_the_broker_is_not_redis(monkeypatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://")  # Celery reads it before its configuration
    sent = []  # what the fake send_task was given (no other broker runs here to read it back from)
    monkeypatch.setattr(current_app, "send_task", lambda name, args, priority=None: sent.append((name, args)))
    enqueue.event_process_send(7)
    assert sent == [(enqueue.EVENT_PROCESS, (7,))]


def test_it_pushes_again_on_a_new_connection_when_the_broker_closed_the_kept_one(broker) -> None:
    enqueue.event_process_send(1)
    target = enqueue._redis_target(current_app.conf.broker_url)
    kept = target._local.connection
    kept.send_command("CLIENT", "ID")
    broker.client_kill_filter(_id=kept.read_response())  # only this connection: the server is shared

    enqueue.event_process_send(2)

    assert target._local.connection is not kept
    assert sorted(m["headers"]["argsrepr"] for m in queued_task_messages(broker)) == ["(1,)", "(2,)"]
