from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Step
from agent.reconciler import RECOVERIES_EXHAUSTED, agent_runs_reconcile, agent_runs_stranded
from agent.services.runs import agent_run_dispatch
from agent.tasks import agent_run_advance_task, agent_runs_reconcile_task
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, TicketFactory
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(hours=1)


def _run(**fields: object) -> AgentRun:
    defaults = {
        "trigger": AgentRun.Trigger.TICKET_CREATED,
        "status": AgentRun.Status.QUEUED,
        "dispatch_token": "t0",
        "dispatched_at": timezone.now() - LONG_AGO,
    }
    return AgentRunFactory(ticket=TicketFactory(tenant_link__tenant_id="acme"), **{**defaults, **fields})


def _advance_messages(broker) -> list[tuple[int, str]]:
    return [
        tuple(message["headers"]["argsrepr"].strip("()").replace("'", "").split(", "))
        for message in queued_task_messages(broker)
        if message["headers"]["task"] == "agent.tasks.agent_run_advance_task"
    ]


def test_it_dispatches_again_a_queued_run_whose_message_never_started(
    broker, django_capture_on_commit_callbacks
) -> None:
    run = _run()
    with django_capture_on_commit_callbacks(execute=True):
        result = agent_runs_reconcile()

    run.refresh_from_db()
    assert result.recovered == [run.pk]
    assert run.recoveries == 1
    assert run.dispatch_token != "t0"
    assert timezone.now() - run.dispatched_at < timedelta(seconds=5)
    assert _advance_messages(broker) == [(str(run.pk), run.dispatch_token)]
    event = AuditEvent.objects.get(verb="run.recovered", object_id=str(run.pk))
    assert event.payload["recovery"] == 1
    assert event.actor_kind == AuditEvent.ActorKind.SYSTEM


def test_it_does_not_dispatch_the_same_run_twice_in_a_row(broker, django_capture_on_commit_callbacks) -> None:
    run = _run()
    with django_capture_on_commit_callbacks(execute=True):
        agent_runs_reconcile()
        second = agent_runs_reconcile()

    assert second.recovered == []
    assert len(_advance_messages(broker)) == 1
    run.refresh_from_db()
    assert run.recoveries == 1


def test_it_restarts_a_run_whose_worker_died_holding_the_lease(broker, django_capture_on_commit_callbacks) -> None:
    now = timezone.now()
    # Dispatched a second ago, claimed, then the worker died: the lease ran out, which is enough.
    run = _run(
        status=AgentRun.Status.RUNNING,
        dispatched_at=now - timedelta(seconds=2),
        lease_token="dead",
        lease_expires_at=now - timedelta(seconds=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = agent_runs_reconcile()

    assert result.recovered == [run.pk]
    assert len(_advance_messages(broker)) == 1


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"status": AgentRun.Status.COMPLETED}, id="completed"),
        pytest.param({"status": AgentRun.Status.ESCALATED}, id="escalated"),
        pytest.param({"status": AgentRun.Status.TAKEN_OVER}, id="taken-over"),
        pytest.param({"dispatched_at": None, "trigger": AgentRun.Trigger.MANUAL}, id="started-by-hand"),
        pytest.param({"dispatched_at": timezone.now() + timedelta(days=1)}, id="recently-dispatched"),
        pytest.param(
            {"status": AgentRun.Status.RUNNING, "lease_token": "x", "lease_expires_at": timezone.now() + LONG_AGO},
            id="held-by-a-live-worker",
        ),
    ],
)
def test_it_leaves_alone_runs_that_are_final_fresh_or_held(fields, broker) -> None:
    run = _run(**fields)

    assert run not in agent_runs_stranded()
    assert agent_runs_reconcile().recovered == []
    assert _advance_messages(broker) == []


def test_it_waits_with_a_run_a_reviewer_has_not_decided_yet(broker) -> None:
    run = _run(status=AgentRun.Status.AWAITING_APPROVAL)
    ProposedActionFactory(run=run, status=ProposedAction.Status.PENDING)

    assert agent_runs_reconcile().recovered == []


def test_it_resumes_a_run_whose_approval_was_decided_but_never_resumed(
    broker, django_capture_on_commit_callbacks
) -> None:
    run = _run(status=AgentRun.Status.AWAITING_APPROVAL)
    ProposedActionFactory(run=run, status=ProposedAction.Status.APPROVED)

    with django_capture_on_commit_callbacks(execute=True):
        assert agent_runs_reconcile().recovered == [run.pk]


def test_it_hands_a_run_that_keeps_failing_to_humans(settings, broker) -> None:
    settings.AGENT_RUN_MAX_RECOVERIES = 3
    run = _run(status=AgentRun.Status.RUNNING, recoveries=3)

    result = agent_runs_reconcile()

    run.refresh_from_db()
    assert result.escalated == [run.pk]
    assert run.status == AgentRun.Status.ESCALATED
    assert run.status_reason == RECOVERIES_EXHAUSTED.format(count=3)
    assert run.lease_token == ""  # released: nothing holds an escalated run
    note = run.ticket.comments.get()
    assert (note.public, "interrupted 3 times" in note.body) == (False, True)
    assert run.steps.filter(kind=Step.Kind.FINAL).exists()
    assert _advance_messages(broker) == []


def test_it_drops_a_message_a_newer_dispatch_superseded(broker, django_capture_on_commit_callbacks) -> None:
    run = _run()
    with django_capture_on_commit_callbacks(execute=True):
        token = agent_run_dispatch(run_id=run.pk)

    assert agent_run_advance_task.apply(args=(run.pk, "t0")).get() == "superseded"
    run.refresh_from_db()
    assert (run.status, run.dispatch_token) == (AgentRun.Status.QUEUED, token)


def test_it_dispatches_even_when_the_broker_is_down_and_the_sweep_sends_it_later(
    broker_unreachable, django_capture_on_commit_callbacks, settings
) -> None:
    run = _run(dispatch_token="", dispatched_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        token = agent_run_dispatch(run_id=run.pk)  # the publish fails and is logged, never raised

    run.refresh_from_db()
    assert run.dispatch_token == token
    settings.AGENT_RUN_STALE_SECONDS = 0
    assert run in agent_runs_stranded(now=timezone.now() + timedelta(seconds=1))


def test_it_runs_the_sweep_as_a_celery_task(broker, django_capture_on_commit_callbacks) -> None:
    _run()
    with django_capture_on_commit_callbacks(execute=True):
        assert agent_runs_reconcile_task.apply().get() == "recovered 1, escalated 0"


def test_it_schedules_the_sweep_on_celery_beat(settings) -> None:
    from agentconsole.celery import app

    entry = app.conf.beat_schedule["agent-runs-reconcile"]
    assert entry["task"] == agent_runs_reconcile_task.name
    assert entry["schedule"] == settings.AGENT_RECONCILE_INTERVAL_SECONDS
