"""Messages to the agent's Celery tasks, sent by task name.

The tasks are the agent's entry points: a task calls the loop or a service (tasks -> loop -> services). A service
that queues work therefore cannot import agent.tasks back without closing a cycle, so it sends the message by the
task's registered name, here. tests/agent/test_enqueue.py proves every name is a task the worker knows and that
its arguments fit; .importlinter keeps everything but the console from importing agent.tasks.
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import os
import socket
import threading
import uuid

import redis
from celery import current_app
from kombu.transport.redis import PRIORITY_STEPS, Channel

RUN_ADVANCE = "agent.tasks.agent_run_advance_task"
ACTION_READ_CURRENT = "agent.tasks.proposed_action_read_current_task"
APPROVAL_NOTIFY = "agent.tasks.approval_notify_task"
TAKE_OVER_NOTE = "agent.tasks.agent_run_take_over_note_task"
EVENT_PROCESS = "agent.tasks.zendesk_event_process_task"


def run_advance_send(run_id: int, dispatch_token: str, *, priority: int | None = None) -> None:
    """Raises whatever the broker raised: the caller (agent_run_publish) decides what a failure means.

    Every model turn ends with this message (the run's next turn), so on a Redis broker it is pushed as the
    webhook's is (see event_process_send): one LPUSH onto the list of its priority step, where kombu would put it."""
    _push_or_send(RUN_ADVANCE, (run_id, dispatch_token), priority=priority)


def event_process_send(event_pk: int) -> None:
    """The webhook's one message: apply the stored event. Raises whatever the broker raised.

    On a Redis broker the message is pushed onto the queue's list as it is, on a connection each thread keeps: one
    LPUSH of the message Celery would have built (the format is kombu's Redis transport's; tests/agent/test_enqueue.py
    holds it to what send_task sends, and the e2e tests' real workers take it). send_task costs about half a
    millisecond of CPU per message — Celery's routing and argument reprs, and kombu building a Redis client for every
    publish — which was as much as all the rest of the webhook's request. Other brokers go through send_task."""
    _push_or_send(EVENT_PROCESS, (event_pk,))


def action_read_current_send(action_id: int) -> None:
    """Every proposal sends this and approval_notify_send on commit: pushed as the run's next turn is."""
    _push_or_send(ACTION_READ_CURRENT, (action_id,))


def approval_notify_send(action_id: int, kind: str) -> None:
    # A plain str: the message's argsrepr is repr(args), where Celery's saferepr shows an enum member's value.
    _push_or_send(APPROVAL_NOTIFY, (action_id, str(kind)))


def _push_or_send(task: str, args: tuple, *, priority: int | None = None) -> None:
    """One LPUSH of the message send_task would send, onto the list of its priority step, on a Redis broker (see
    event_process_send); send_task on any other. Raises whatever the broker raised."""
    target = _redis_target(current_app.conf.broker_url or "")
    if target is None:
        current_app.send_task(task, args=args, priority=priority)
        return
    message = _celery_message(task, args, queue=target.queue, origin=target.origin, priority=priority)
    target.push(message, key=target.list_for(priority))


def take_over_note_send(run_id: int, user_id: int) -> None:
    current_app.send_task(TAKE_OVER_NOTE, args=(run_id, user_id))


REPLAY_EXECUTE = "agent.tasks.replay_execute_task"


def replay_execute_send(replay_id: int) -> None:
    current_app.send_task(REPLAY_EXECUTE, args=(replay_id,))


SUITE_RERUN = "agent.tasks.suite_rerun_task"


def suite_rerun_send(replay_id: int) -> None:
    current_app.send_task(SUITE_RERUN, args=(replay_id,))


# --- The webhook's message, pushed straight onto a Redis broker (event_process_send) ---------------------------

# The message body's third part (Celery's protocol 2): no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class _RedisQueue:
    """A Redis broker's queue list, pushed onto over a connection each thread keeps (a redis-py client's pool,
    retries and instrumentation cost three times the LPUSH itself). A connection that failed is dropped; the
    next push opens another."""

    def __init__(self, url: str, queue: str, priority_steps: list[int]) -> None:
        self.pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.queue = queue
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self.priority_steps = priority_steps
        self._lists: dict[int | None, str] = {}
        self._local = threading.local()

    def list_for(self, priority: int | None) -> str:
        """The Redis list kombu keeps the queue's messages of this priority in: one per priority step, the queue's
        own name for step 0. Worked out once per priority (reading Celery's configuration every time cost half as
        much as the LPUSH)."""
        key = self._lists.get(priority)
        if key is None:
            steps = self.priority_steps
            step = steps[bisect.bisect(steps, max(0, min(9, priority or 0))) - 1]
            key = self._lists[priority] = f"{self.queue}{Channel.sep}{step}" if step else self.queue
        return key

    def push(self, message: str, *, key: str | None = None) -> None:
        """LPUSH onto the queue's list, or `key` (the list of another priority step)."""
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = self.pool.make_connection()
            try:
                connection.send_command("LPUSH", key or self.queue, message)
                connection.read_response()
                return
            except BaseException as exc:
                connection.disconnect()
                self._local.connection = None
                # A kept connection the server closed (a restart, an idle timeout) gets one more try on a new one.
                if attempt == 2 or not isinstance(exc, redis.ConnectionError):
                    raise


_redis_targets: dict[str, _RedisQueue | None] = {}
_redis_targets_lock = threading.Lock()


def _redis_target(broker_url: str) -> _RedisQueue | None:
    """The queue to push onto for a Redis broker URL; None for any other broker, or a Redis broker with options
    kombu would apply to the keys or the connection (those go through send_task)."""
    if broker_url in _redis_targets:
        return _redis_targets[broker_url]
    with _redis_targets_lock:
        if broker_url not in _redis_targets:
            target = None
            options = current_app.conf.broker_transport_options or {}
            plain = not (set(options) & {"global_keyprefix", "sep"}) and not current_app.conf.broker_use_ssl
            plain = plain and not current_app.conf.task_routes  # every task in the default queue
            if broker_url.startswith(("redis://", "rediss://")) and plain:
                queue = current_app.amqp.router.route({}, EVENT_PROCESS)["queue"].name
                target = _RedisQueue(broker_url, queue, list(options.get("priority_steps", PRIORITY_STEPS)))
            _redis_targets[broker_url] = target
    return _redis_targets[broker_url]


def _celery_message(task: str, args: tuple, *, queue: str, origin: str, priority: int | None = None) -> str:
    """A task message as Celery's send_task and kombu's Redis transport write it: JSON, the body base64."""
    task_id = str(uuid.uuid4())
    return _message_template(task, queue, origin, priority or 0) % {
        "body": base64.b64encode(json.dumps([list(args), {}, _EMBED]).encode()).decode(),
        "id": task_id,
        "argsrepr": json.dumps(repr(args))[1:-1],
        "tag": str(uuid.uuid4()),
    }


@functools.cache
def _message_template(task: str, queue: str, origin: str, priority: int) -> str:
    """The message with its four varying parts as %-placeholders: building the whole dict and encoding it for
    every message cost more than the rest of the send."""
    message = json.dumps(
        {
            "body": "@body@",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task,
                "id": "@id@",
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": "@id@",
                "parent_id": None,
                "argsrepr": "@argsrepr@",
                "kwargsrepr": "{}",
                "origin": origin,
                "ignore_result": None,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": "@id@",
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": priority,
                "body_encoding": "base64",
                "delivery_tag": "@tag@",
            },
        }
    ).replace("%", "%%")
    for name in ("body", "id", "argsrepr", "tag"):
        message = message.replace(f'"@{name}@"', f'"%({name})s"')
    return message
