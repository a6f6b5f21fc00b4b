"""A waiting approval reaches the workflow's reviewers by Slack (the real slack-sdk against a local stand-in of the
webhook or the Web API) and e-mail (Django's locmem outbox), once per channel; past its SLA it escalates once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from agent.catalogue import get_tool
from agent.models import Notification, ProposedAction, Step
from agent.notifications import approval_notify, approval_sla_sweep
from agent.services.actions import approval_sla_due, proposed_action_create
from agent.tasks import approval_sla_sweep_task
from agentconsole.celery import app
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory
from tests.http_standin import Scripted, StandIn, serve
from tests.support import queued_task_messages

pytestmark = pytest.mark.django_db

HOSTILE = "Stale <!channel> & <http://evil.example|click here>\nBcc: everyone@example.com"


@pytest.fixture
def slack():
    yield from serve(StandIn(fallback=Scripted(200, {"ok": True})))


@pytest.fixture
def pending(db) -> ProposedAction:
    workflow = WorkflowFactory(name="Trial extension", slack_channel="#trials")
    return ProposedActionFactory(
        tool="extend_trial",
        args={"tenant_id": "acme", "days": 7},
        rationale="The tenant is trialing and asked for a week.",
        run__workflow=workflow,
        run__status="awaiting_approval",
        run__ticket__external_id="4512",
        run__ticket__subject=HOSTILE,
        run__ticket__tenant_link__tenant_id="acme",
        sla_due_at=timezone.now() + timedelta(minutes=30),
    )


def _link(action: ProposedAction) -> str:
    return f"{settings.CONSOLE_BASE_URL}/tickets/{action.run.ticket_id}/#action-{action.pk}"


def test_it_posts_to_the_slack_webhook_with_a_deep_link_and_escaped_ticket_text(settings, slack, pending) -> None:
    settings.SLACK_WEBHOOK_URL = f"{slack.url}/services/T000/B000/XXXX"

    result = approval_notify(action_id=pending.pk)

    assert result.sent == ["slack"]
    (request,) = slack.requests
    assert (request.method, request.path) == ("POST", "/services/T000/B000/XXXX")
    body = request.json()
    assert body["text"].startswith("Approval waiting: extend_trial on ticket #4512")
    assert _link(pending) in body["text"]
    section = body["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;http://evil.example|click here&gt;" in section
    assert "<!channel>" not in section
    assert "*Tenant:* acme" in section and "*Workflow:* Trial extension (triage phase)" in section
    assert body["blocks"][1]["elements"][0]["url"] == _link(pending)
    notification = Notification.objects.get(action=pending)
    assert (notification.channel, notification.status, notification.recipients) == ("slack", "sent", ["webhook"])


def test_it_posts_with_a_bot_token_to_the_workflows_channel(settings, slack, pending) -> None:
    settings.SLACK_BOT_TOKEN = "xoxb-test-token"
    settings.SLACK_API_URL = f"{slack.url}/api/"

    approval_notify(action_id=pending.pk)

    (request,) = slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == "Bearer xoxb-test-token"
    body = request.json()
    assert body["channel"] == "#trials"
    assert body["blocks"][1]["elements"][0]["url"] == _link(pending)


def test_it_emails_the_workflows_reviewers_or_else_every_reviewer(settings, pending) -> None:
    settings.NOTIFY_EMAIL_FROM = "agent-console@example.com"
    UserFactory(username="rita", email="rita@example.com", groups=["reviewers"])
    UserFactory(username="sam", email="sam@example.com", groups=["reviewers"])
    UserFactory(username="nobody", email="", groups=["reviewers"])
    UserFactory(username="outsider", email="outsider@example.com")

    approval_notify(action_id=pending.pk)

    (message,) = mail.outbox
    assert sorted(message.to) == ["rita@example.com", "sam@example.com"]
    assert message.from_email == "agent-console@example.com"
    assert "\n" not in message.subject
    assert message.subject.startswith("[Agent Console] Approval waiting: extend_trial on ticket #4512")
    assert _link(pending) in message.body
    assert "Why the agent proposes it: The tenant is trialing and asked for a week." in message.body

    # A workflow that names its reviewers tells only them.
    named = ProposedActionFactory(run__workflow=WorkflowFactory(), run__ticket__subject="Another")
    named.run.workflow.reviewers.add(UserFactory(username="wendy", email="wendy@example.com", groups=["reviewers"]))
    approval_notify(action_id=named.pk)
    assert mail.outbox[1].to == ["wendy@example.com"]


def test_it_sends_each_channel_once_and_retries_only_a_failed_one(settings, slack, pending) -> None:
    settings.SLACK_WEBHOOK_URL = f"{slack.url}/hook"
    settings.NOTIFY_EMAIL_FROM = "agent-console@example.com"
    UserFactory(username="rita", email="rita@example.com", groups=["reviewers"])
    slack.answer(503, {"error": "unavailable"})

    first = approval_notify(action_id=pending.pk)
    assert (first.sent, first.failed) == (["email"], ["slack"])
    failed = Notification.objects.get(action=pending, channel="slack")
    assert failed.status == "failed" and "503" in failed.error

    second = approval_notify(action_id=pending.pk)
    third = approval_notify(action_id=pending.pk)
    assert (second.sent, third.sent) == (["slack"], [])
    assert len(slack.requests) == 2 and len(mail.outbox) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("sent", 2)
    assert AuditEvent.objects.filter(verb="notification.failed").count() == 1
    assert AuditEvent.objects.filter(verb="notification.sent").count() == 2


def test_it_tells_nobody_about_a_decided_proposal(settings, slack, pending) -> None:
    settings.SLACK_WEBHOOK_URL = f"{slack.url}/hook"
    ProposedAction.objects.filter(pk=pending.pk).update(status="rejected")
    assert approval_notify(action_id=pending.pk).sent == []
    assert not slack.requests


def test_it_enqueues_the_notification_and_the_state_read_when_a_proposal_starts_waiting(
    settings, broker, django_capture_on_commit_callbacks
) -> None:
    settings.NOTIFY_EMAIL_FROM = "agent-console@example.com"
    run = AgentRunFactory(status="running", workflow=WorkflowFactory(approval_sla_minutes=45))
    step = StepFactory(run=run, kind=Step.Kind.ACTION, tool_name="extend_trial", tool_call_id="c1")
    with django_capture_on_commit_callbacks(execute=True):
        action = proposed_action_create(
            run=run, step=step, tool=get_tool("extend_trial"), args={"tenant_id": "acme", "days": 3},
            rationale="", status=ProposedAction.Status.PENDING, reason="",
        )  # fmt: skip
    tasks = {(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued_task_messages(broker)}
    assert ("agent.tasks.approval_notify_task", f"({action.pk}, 'pending')") in tasks
    assert ("agent.tasks.proposed_action_read_current_task", f"({action.pk},)") in tasks
    waited = action.sla_due_at - action.created_at
    assert timedelta(minutes=44, seconds=59) < waited < timedelta(minutes=45, seconds=1)


@pytest.mark.parametrize("configured", ["", "webhook", "channel", "email"])
def test_it_enqueues_only_what_would_do_something_when_a_proposal_starts_waiting(
    settings, broker, django_capture_on_commit_callbacks, configured
) -> None:
    # A tool that cannot read its state has no diff to show; with no Slack and no e-mail nobody is told.
    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/hook" if configured == "webhook" else ""
    settings.SLACK_BOT_TOKEN = "xoxb-test-token" if configured == "channel" else ""
    settings.SLACK_CHANNEL = ""
    settings.NOTIFY_EMAIL_FROM = "agent-console@example.com" if configured == "email" else ""
    run = AgentRunFactory(status="running", workflow=WorkflowFactory(slack_channel="#trials"))
    step = StepFactory(run=run, kind=Step.Kind.ACTION, tool_name="reply_to_customer", tool_call_id="c1")
    tool = get_tool("reply_to_customer")
    assert not tool.can_read_current
    with django_capture_on_commit_callbacks(execute=True):
        action = proposed_action_create(
            run=run, step=step, tool=tool, args={"body": "Done."}, rationale="", status=ProposedAction.Status.PENDING,
            reason="",
        )  # fmt: skip
    tasks = [m["headers"]["task"] for m in queued_task_messages(broker)]
    assert tasks == (["agent.tasks.approval_notify_task"] if configured else [])
    if configured:
        assert queued_task_messages(broker)[0]["headers"]["argsrepr"] == f"({action.pk}, 'pending')"


def test_it_takes_the_sla_from_the_workflow_then_the_setting_and_0_means_none(settings) -> None:
    settings.APPROVAL_SLA_MINUTES = 60
    now = timezone.now()
    assert approval_sla_due(workflow=None, now=now) == now + timedelta(minutes=60)
    assert approval_sla_due(workflow=WorkflowFactory(approval_sla_minutes=5), now=now) == now + timedelta(minutes=5)
    assert approval_sla_due(workflow=WorkflowFactory(approval_sla_minutes=0), now=now) is None
    settings.APPROVAL_SLA_MINUTES = 0
    assert approval_sla_due(workflow=None, now=now) is None


def test_it_escalates_an_overdue_proposal_exactly_once(
    settings, slack, pending, broker, django_capture_on_commit_callbacks
) -> None:
    settings.SLACK_WEBHOOK_URL = f"{slack.url}/hook"
    ProposedAction.objects.filter(pk=pending.pk).update(sla_due_at=timezone.now() - timedelta(minutes=1))
    on_time = ProposedActionFactory(run__status="awaiting_approval", sla_due_at=timezone.now() + timedelta(hours=1))
    no_sla = ProposedActionFactory(run__status="awaiting_approval", sla_due_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        assert approval_sla_sweep() == [pending.pk]
        assert approval_sla_sweep() == []
        assert approval_sla_sweep_task() == 0  # what beat runs

    pending.refresh_from_db()
    ticket = pending.run.ticket
    ticket.refresh_from_db()
    assert pending.status == "pending" and pending.sla_escalated_at is not None  # still decidable
    assert ticket.group_id == settings.HELPDESK_PODS["humans"]
    (note,) = ticket.comments.filter(public=False)
    assert "past this workflow's approval SLA" in note.body and _link(pending) in note.body
    assert AuditEvent.objects.filter(verb="action.sla_escalated").count() == 1
    tasks = [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued_task_messages(broker)]
    assert tasks.count(("agent.tasks.approval_notify_task", f"({pending.pk}, 'sla')")) == 1
    for action in (on_time, no_sla):
        action.refresh_from_db()
        assert action.sla_escalated_at is None

    approval_notify(action_id=pending.pk, kind="sla")  # what that task runs
    approval_notify(action_id=pending.pk, kind="sla")
    (request,) = slack.requests
    assert request.json()["text"].startswith("Approval overdue: extend_trial on ticket #4512")


def test_it_registers_the_sweep_with_celery_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["approval-sla-sweep"]
    assert entry["task"] == "agent.tasks.approval_sla_sweep_task"
    assert entry["schedule"] == settings.APPROVAL_SLA_SWEEP_SECONDS
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
