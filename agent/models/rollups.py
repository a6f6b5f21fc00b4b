"""The dashboard's figures, kept per calendar week as runs end and people decide (agent/services/rollups.py), so
the dashboard reads a few hundred small rows instead of every run of its weeks.

A row is a running total: services add to it in the same transaction as the change it counts, and
`manage.py dashboard_rebuild` recomputes every row from the runs and proposals (after a bulk import, or a change
of TIME_ZONE, which moves the weeks' edges).
"""

from __future__ import annotations

from django.db import models


class UsageWeek(models.Model):
    """Token usage of the runs that ended in one week (local Monday to Sunday), per engine. Runs still open are
    not here: the dashboard adds them live, from the partial index on unfinished runs."""

    week = models.DateField()
    engine = models.CharField(max_length=2100, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    tickets = models.PositiveBigIntegerField(default=0, help_text="Runs a ticket's creation started (one per ticket).")
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["week", "engine"], name="usage_week_one_per_engine")]

    def __str__(self) -> str:
        return f"usage of {self.week} on {self.engine or 'no engine'}"


class LatencyWeek(models.Model):
    """One bucket of a histogram of durations: how many resolutions (a ticket's creation to its run's completion,
    outside shadow) or human decisions (a proposal's creation to its decision) of one week, workflow and phase took
    between 2^(bucket/16) and 2^((bucket+1)/16) seconds, and their sum. Percentiles interpolate between the
    buckets' means: exact while a bucket holds equal durations, within 2.2% (half a bucket) otherwise."""

    class Kind(models.TextChoices):
        RESOLUTION = "resolution", "Time to resolution"
        APPROVAL = "approval", "Time to a human decision"

    week = models.DateField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Not a foreign key: a deleted workflow's history stays (as "No workflow", as its runs show it); 0 is none.
    workflow_id = models.PositiveIntegerField(default=0)
    phase = models.CharField(max_length=16, blank=True)
    bucket = models.SmallIntegerField(help_text="floor(16 * log2(seconds)); -1 for under a second.")
    count = models.PositiveBigIntegerField(default=0)
    seconds = models.FloatField(default=0, help_text="The sum of the bucket's durations.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "week", "workflow_id", "phase", "bucket"], name="latency_week_one_per_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.week} workflow {self.workflow_id} {self.phase} bucket {self.bucket}"
