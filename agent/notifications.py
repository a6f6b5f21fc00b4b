"""Telling reviewers that a decision waits, and escalating the ones that waited past their SLA.

Services, like agent/services/: each send is recorded as a Notification row first (unique per proposal, kind and
channel), so a retried or redelivered task never sends a message twice, and the ticket page can say who was told.
Every call to Slack or a mail server happens here, in a worker, never in a request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from agent import telemetry
from agent.enqueue import approval_notify_send
from agent.models import Notification, ProposedAction
from agent.slack import SlackError, SlackMessage, escape, slack_destination, slack_post
from audit.models import AuditEvent
from audit.services import audit_event_record

logger = logging.getLogger(__name__)

SLA_NOTE = (
    "Agent Console: the proposed {tool} has waited {minutes} minutes for a reviewer, past this workflow's approval "
    "SLA. Routed to the humans pod; the proposal still waits for a decision: {link}"
)
SWEEP_BATCH = 200


@dataclass(frozen=True)
class NotifyResult:
    sent: list[str]
    failed: list[str]  # channels that failed and may succeed on a retry


def action_link(action: ProposedAction) -> str:
    """The deep link a notification carries: the ticket page, scrolled to the proposal."""
    path = reverse("console:ticket-detail", args=[action.run.ticket_id])
    return f"{settings.CONSOLE_BASE_URL}{path}#action-{action.pk}"


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _headline(action: ProposedAction, kind: str) -> str:
    ticket = action.run.ticket
    what = "Approval overdue" if kind == Notification.Kind.SLA else "Approval waiting"
    return f"{what}: {action.tool} on ticket #{ticket.external_id} {_one_line(ticket.subject, 80)}"


def _facts(action: ProposedAction) -> list[tuple[str, str]]:
    run, ticket = action.run, action.run.ticket
    facts = [
        ("Tenant", ticket.tenant_id or "unmapped"),
        ("Workflow", f"{run.workflow.name if run.workflow else 'none'} ({run.get_phase_display().lower()} phase)"),
        ("Risk", action.get_risk_display()),
    ]
    if action.sla_due_at:
        facts.append(("Decide by", timezone.localtime(action.sla_due_at).strftime("%Y-%m-%d %H:%M %Z")))
    return facts


def slack_message(action: ProposedAction, kind: str) -> SlackMessage:
    link = action_link(action)
    headline = escape(_headline(action, kind))
    facts = "\n".join(f"*{name}:* {escape(value)}" for name, value in _facts(action))
    why = f"\n>{escape(_one_line(action.rationale, 300))}" if action.rationale else ""
    return SlackMessage(
        text=f"{_headline(action, kind)} — {link}",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{facts}{why}"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Review in Agent Console"},
                        "url": link,
                        "action_id": "review",
                    }
                ],
            },
        ],
    )


def email_message(action: ProposedAction, kind: str, recipients: list[str]) -> EmailMessage:
    lines = [_headline(action, kind), ""]
    lines += [f"{name}: {value}" for name, value in _facts(action)]
    if action.rationale:
        lines += ["", f"Why the agent proposes it: {action.rationale}"]
    lines += ["", f"Review it: {action_link(action)}"]
    # One line, no control characters: a ticket subject must not break the header (Django refuses newlines).
    subject = f"[Agent Console] {_one_line(_headline(action, kind), 150)}"
    return EmailMessage(subject=subject, body="\n".join(lines), from_email=settings.NOTIFY_EMAIL_FROM, to=recipients)


def workflow_reviewer_emails(action: ProposedAction) -> list[str]:
    """The workflow's reviewers; when it names none, every active member of the reviewers group."""
    from agentconsole.roles import REVIEWERS

    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    workflow = action.run.workflow
    if workflow is not None and workflow.reviewers.exists():
        users = users.filter(reviewed_workflows=workflow)
    else:
        users = users.filter(groups__name=REVIEWERS)
    return sorted(set(users.values_list("email", flat=True)))


def _claim(action: ProposedAction, kind: str, channel: str) -> Notification | None:
    """The row this send works on, or None when another send already did it (or is doing it)."""
    try:
        with transaction.atomic():
            return Notification.objects.create(action=action, kind=kind, channel=channel, attempts=1)
    except IntegrityError:
        pass
    retried = Notification.objects.filter(
        action=action, kind=kind, channel=channel, status=Notification.Status.FAILED
    ).update(status=Notification.Status.SENDING, error="")
    if not retried:
        return None
    notification = Notification.objects.get(action=action, kind=kind, channel=channel)
    notification.attempts += 1
    notification.save(update_fields=["attempts"])
    return notification


def _finish(notification: Notification, *, recipients: list[str], error: str = "") -> None:
    notification.status = Notification.Status.FAILED if error else Notification.Status.SENT
    notification.recipients = recipients
    notification.error = error
    notification.sent_at = None if error else timezone.now()
    notification.save(update_fields=["status", "recipients", "error", "sent_at"])
    audit_event_record(
        verb="notification.failed" if error else "notification.sent",
        obj=notification,
        payload={
            "action": notification.action_id,
            "kind": notification.kind,
            "channel": notification.channel,
            "recipients": recipients,
            "error": error,
        },
        actor_kind=AuditEvent.ActorKind.SYSTEM,
    )


def approval_notify(*, action_id: int, kind: str = Notification.Kind.PENDING) -> NotifyResult:
    """Tell the workflow's reviewers, by Slack and/or e-mail (whichever is configured), that a proposal waits
    (kind "pending") or is past its SLA (kind "sla"). Nothing is sent for a proposal already decided."""
    action = (
        ProposedAction.objects.select_related("run__ticket__tenant_link", "run__workflow").filter(pk=action_id).first()
    )
    result = NotifyResult(sent=[], failed=[])
    if action is None or action.status != ProposedAction.Status.PENDING:
        return result
    workflow_channel = action.run.workflow.slack_channel if action.run.workflow else ""
    destination = slack_destination(channel=workflow_channel)
    if destination:
        notification = _claim(action, kind, Notification.Channel.SLACK)
        if notification is not None:
            try:
                slack_post(slack_message(action, kind), channel=workflow_channel)
                _finish(notification, recipients=[destination])
                result.sent.append(Notification.Channel.SLACK)
            except SlackError as exc:
                logger.warning("Slack notification for action %s failed: %s", action.pk, exc.message)
                _finish(notification, recipients=[destination], error=exc.message)
                if exc.retryable:
                    result.failed.append(Notification.Channel.SLACK)
    recipients = workflow_reviewer_emails(action) if settings.NOTIFY_EMAIL_FROM else []
    if recipients:
        notification = _claim(action, kind, Notification.Channel.EMAIL)
        if notification is not None:
            try:
                email_message(action, kind, recipients).send(fail_silently=False)
                _finish(notification, recipients=recipients)
                result.sent.append(Notification.Channel.EMAIL)
            except Exception as exc:  # smtplib raises OSErrors; each ESP backend (anymail) its own errors
                logger.warning("E-mail notification for action %s failed: %s", action.pk, exc)
                _finish(notification, recipients=recipients, error=str(exc)[:500])
                result.failed.append(Notification.Channel.EMAIL)
    return result


def _overdue_ids(now: datetime) -> list[int]:
    return list(
        ProposedAction.objects.filter(
            status=ProposedAction.Status.PENDING, sla_escalated_at__isnull=True, sla_due_at__lte=now
        )
        .order_by("sla_due_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )


def approval_sla_sweep(*, now: datetime | None = None) -> list[int]:
    """Escalate every pending proposal past its SLA, each exactly once: a conditional UPDATE takes it (two
    sweeps at once cannot both), then a private note, the humans pod, an audit event and a notification.
    The proposal stays pending: a reviewer can still decide it. Returns the ids escalated."""
    from agent.services.runs import helpdesk_escalation_post

    now = now or timezone.now()
    escalated = []
    for action_id in _overdue_ids(now):
        taken = ProposedAction.objects.filter(
            Q(pk=action_id), status=ProposedAction.Status.PENDING, sla_escalated_at__isnull=True
        ).update(sla_escalated_at=now)
        if not taken:
            continue
        action = ProposedAction.objects.select_related("run__ticket", "run__workflow").get(pk=action_id)
        waited = int((now - action.created_at).total_seconds() // 60)
        problem = helpdesk_escalation_post(
            action.run, SLA_NOTE.format(tool=action.tool, minutes=waited, link=action_link(action))
        )
        audit_event_record(
            verb="action.sla_escalated",
            obj=action,
            payload={"due": action.sla_due_at.isoformat(), "waited_minutes": waited, "helpdesk_problem": problem},
            actor_kind=AuditEvent.ActorKind.SYSTEM,
        )
        telemetry.approval_sla_breached(workflow=action.run.workflow.slug if action.run.workflow_id else "")
        transaction.on_commit(lambda pk=action_id: approval_notify_send(pk, Notification.Kind.SLA), robust=True)
        escalated.append(action_id)
    return escalated
