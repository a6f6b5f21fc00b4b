"""A stored webhook event is never lost: the web process may die between the INSERT and the task message, or the
broker may be down then; the sweep (celery beat) sends the message again, and the event is applied once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agent.models import AgentRun
from agent.services.intake import zendesk_events_redispatch
from agent.tasks import zendesk_events_redispatch_task
from tests.factories import WorkflowFactory
from tests.support import commit_callbacks_run, queued_task_messages, webhook_events_process, zendesk_event
from tickets.models import Ticket, WebhookEvent

pytestmark = pytest.mark.django_db


def _process_died_before_sending(post_webhook) -> WebhookEvent:
    """The event's INSERT committed, then the process died: its on-commit send never ran."""
    from django.db import connection

    assert post_webhook(zendesk_event(), process=False).status_code == 202
    assert len(connection.run_on_commit) == 1
    del connection.run_on_commit[:]
    return WebhookEvent.objects.get()


def test_it_sends_an_event_whose_message_never_went_out_once_it_is_stale(post_webhook, broker, settings) -> None:
    settings.WEBHOOK_EVENT_STALE_SECONDS = 60
    WorkflowFactory(match_tags=["stale_cache"])
    stored = _process_died_before_sending(post_webhook)
    assert queued_task_messages(broker) == []

    assert zendesk_events_redispatch(now=timezone.now() + timedelta(seconds=30)) == []  # its message may be slow
    later = timezone.now() + timedelta(seconds=61)
    assert zendesk_events_redispatch(now=later) == [stored.pk]
    assert zendesk_events_redispatch(now=later) == []  # one sweep's dispatch is not repeated by the next at once
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued_task_messages(broker)] == [
        ("agent.tasks.zendesk_event_process_task", f"({stored.pk},)")
    ]

    assert webhook_events_process() == ["run started"]
    assert Ticket.objects.count() == 1 and AgentRun.objects.count() == 1
    assert zendesk_events_redispatch(now=later + timedelta(hours=1)) == []  # processed: never sent again


def test_it_sends_again_an_event_whose_message_was_lost_after_the_last_sweep(post_webhook, broker) -> None:
    stored = _process_died_before_sending(post_webhook)
    first = timezone.now() + timedelta(seconds=120)
    assert zendesk_events_redispatch(now=first, stale_seconds=60) == [stored.pk]
    broker.flushdb()  # the worker that took the message died with it

    assert zendesk_events_redispatch(now=first + timedelta(seconds=30), stale_seconds=60) == []
    assert zendesk_events_redispatch(now=first + timedelta(seconds=61), stale_seconds=60) == [stored.pk]
    assert webhook_events_process() == ["run started"]
    assert Ticket.objects.count() == 1 and AgentRun.objects.count() == 1


def test_it_runs_as_the_scheduler_calls_it(post_webhook, broker, settings) -> None:
    settings.WEBHOOK_EVENT_STALE_SECONDS = 1
    stored = _process_died_before_sending(post_webhook)
    WebhookEvent.objects.filter(pk=stored.pk).update(received_at=timezone.now() - timedelta(seconds=5))

    assert zendesk_events_redispatch_task.apply().get() == "sent 1"
    commit_callbacks_run()
    assert webhook_events_process() == ["run started"]
    assert settings.CELERY_BEAT_SCHEDULE["webhook-events-redispatch"]["task"] == zendesk_events_redispatch_task.name


def test_it_keeps_trying_an_event_that_is_never_applied_waiting_longer_each_time(post_webhook, broker, caplog) -> None:
    stored = _process_died_before_sending(post_webhook)
    at = timezone.now() + timedelta(seconds=61)
    for tries, wait in enumerate([60, 120, 240, 480], start=1):
        assert zendesk_events_redispatch(now=at, stale_seconds=60) == [stored.pk]
        broker.flushdb()  # each message is lost again (or its task fails): the event stays unprocessed
        assert zendesk_events_redispatch(now=at + timedelta(seconds=wait - 1), stale_seconds=60) == []
        at += timedelta(seconds=wait)
        stored.refresh_from_db()
        assert (stored.redispatches, stored.processed_at) == (tries, None)
    loud = [r for r in caplog.records if r.levelname == "ERROR" and f"webhook event {stored.pk} sent" in r.message]
    assert len(loud) == 2  # from the third try on

    WebhookEvent.objects.filter(pk=stored.pk).update(redispatches=40)  # a day of failures: the wait stops growing
    assert zendesk_events_redispatch(now=at, stale_seconds=60) == [stored.pk]
    stored.refresh_from_db()
    assert stored.redispatch_after == at + timedelta(seconds=60 * 64)

    assert webhook_events_process() == ["run started"]  # whatever failed is fixed: applied once, never sent again
    assert zendesk_events_redispatch(now=at + timedelta(days=1), stale_seconds=60) == []
