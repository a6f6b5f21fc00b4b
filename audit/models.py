from __future__ import annotations

from django.conf import settings
from django.db import models

AUDIT_EVENT_IMMUTABLE = "Audit events are append-only."


class AuditEvent(models.Model):
    """One thing that happened, who did it, and a hash of exactly what it was done with. Never updated."""

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"
        WEBHOOK = "webhook", "Webhook"

    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    payload_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # Keyset pages of the log, newest first, unfiltered and by verb (console.selectors.audit).
            models.Index(fields=["created_at", "id"], name="audit_event_created_id"),
            models.Index(fields=["verb", "created_at", "id"], name="audit_event_verb_created_id"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_kind}:{self.actor_id or '-'} {self.verb} {self.object_type}#{self.object_id}"

    # Append-only is a property of the row, not a side effect: refusing to change it is the model's own rule.
    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ValueError(AUDIT_EVENT_IMMUTABLE)
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError(AUDIT_EVENT_IMMUTABLE)
