from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time each Celery worker's consumer was seen alive: /readyz wants a recent one."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list, help_text="The queues the worker consumes.")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"
