"""What people say about and hear of a run's proposals: ratings, and notifications of waiting approvals."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agent.models.runs import ProposedAction, Step


class Rating(models.Model):
    """A reviewer's thumbs up or down on a proposed action or on a drafted note or reply (a Step)."""

    class Value(models.IntegerChoices):
        UP = 1, "Thumbs up"
        DOWN = -1, "Thumbs down"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    action = models.ForeignKey(ProposedAction, null=True, blank=True, on_delete=models.CASCADE, related_name="ratings")
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.CASCADE, related_name="ratings")
    value = models.SmallIntegerField(choices=Value.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(action__isnull=False, step__isnull=True)
                    | models.Q(action__isnull=True, step__isnull=False)
                ),
                name="rating_exactly_one_target",
            ),
            models.UniqueConstraint(
                fields=["user", "action"], condition=models.Q(action__isnull=False), name="rating_one_per_action"
            ),
            models.UniqueConstraint(
                fields=["user", "step"], condition=models.Q(step__isnull=False), name="rating_one_per_step"
            ),
        ]

    def __str__(self) -> str:
        target = f"action {self.action_id}" if self.action_id else f"step {self.step_id}"
        return f"{self.get_value_display()} on {target} by {self.user_id}"


class Notification(models.Model):
    """One message about one proposal on one channel. Unique per (action, kind, channel): a retried or redelivered
    task finds the row and never sends a message twice."""

    class Kind(models.TextChoices):
        PENDING = "pending", "Approval waiting"
        SLA = "sla", "Approval past its SLA"

    class Channel(models.TextChoices):
        SLACK = "slack", "Slack"
        EMAIL = "email", "E-mail"

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    action = models.ForeignKey(ProposedAction, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    recipients = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["action", "kind", "channel"], name="notification_once_per_channel")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.channel} for action {self.action_id} ({self.status})"
