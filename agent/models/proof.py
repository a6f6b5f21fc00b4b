"""Proof before promotion: workflow versions, replays, regression suites."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agent.models.reviews import Rating
from agent.models.runs import AgentRun, ProposedAction
from agent.models.workflows import Workflow
from tickets.models import Ticket


class WorkflowVersion(models.Model):
    """What a workflow's runs actually ran with — runbook, playbook, tool set, contracts, model and prompt — frozen.
    A change to any of them makes a new version; a version is never changed after it is written, so the evidence
    counted for it (agent.selectors.evidence.version_evidence_many) is evidence about exactly this content."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the content below.")
    runbook = models.TextField()
    playbook = models.JSONField(default=list, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="The tool set offered: [{name, risk, spec_sha256}].")
    contracts = models.JSONField(default=dict, blank=True, help_text="The effect contracts in use, by tool.")
    engine = models.CharField(max_length=2100, help_text="offline or bedrock:<model id or ARN>")
    prompt = models.TextField(help_text="The system prompt template the model is given.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"

    def save(self, *args: object, **kwargs: object) -> None:
        # Not a side effect but the model's one invariant: a version is written once. Evidence and replays refer to
        # it; changing it in place would make them lie about what ran.
        if not self._state.adding:
            raise ValueError("A workflow version is immutable; a change makes a new version.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class RegressionCase(models.Model):
    """A past ticket with what a version must (not) do on it, from reviewer feedback or an approved outcome."""

    class Origin(models.TextChoices):
        APPROVED = "approved", "Approved as proposed"
        EDITED = "edited", "Edited by a reviewer"
        REJECTED = "rejected", "Rejected by a reviewer"
        THUMBS_DOWN = "thumbs_down", "Thumbs down"
        SEEDED = "seeded", "Written by an admin"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="regression_cases")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="regression_cases")
    source_run = models.ForeignKey(
        AgentRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="regression_cases",
        help_text="The run whose recorded observations a replay answers from. Empty: the ticket's latest ended run.",
    )
    source_action = models.ForeignKey(
        ProposedAction, null=True, blank=True, on_delete=models.SET_NULL, related_name="regression_cases"
    )
    source_rating = models.OneToOneField(
        Rating, null=True, blank=True, on_delete=models.SET_NULL, related_name="regression_case"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices)
    expect_call = models.JSONField(
        null=True, blank=True, help_text='The call that should be made: {"tool": ..., "args": {...}}.'
    )
    forbid_call = models.JSONField(
        null=True, blank=True, help_text='The call that must not be made: {"tool": ..., "args": {...} or null}.'
    )
    forbid_reply = models.TextField(blank=True, help_text="A reply that must not be sent to the customer.")
    note = models.TextField(blank=True, help_text="The reviewer's reason or comment.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_action", "origin"],
                condition=models.Q(source_action__isnull=False),
                name="regression_case_once_per_action_origin",
            ),
            models.CheckConstraint(
                condition=~models.Q(expect_call__isnull=True, forbid_call__isnull=True, forbid_reply=""),
                name="regression_case_has_an_expectation",
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.origin}) of workflow {self.workflow_id}"


class Replay(models.Model):
    """One workflow version run over past tickets with no effect on anything: reads answer from what the original
    runs recorded, writes and helpdesk calls are dry runs. A suite run is a replay over a suite's cases."""

    class Kind(models.TextChoices):
        REPLAY = "replay", "Replay of past tickets"
        SUITE = "suite", "Regression suite"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Reads(models.TextChoices):
        RECORDED = "recorded", "Recorded observations only"
        LIVE = "live", "Recorded, else a read-only live call"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="replays")
    version = models.ForeignKey(WorkflowVersion, on_delete=models.CASCADE, related_name="replays")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REPLAY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    reads = models.CharField(max_length=16, choices=Reads.choices, default=Reads.RECORDED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    passed = models.BooleanField(null=True, blank=True, help_text="A suite run: every runnable case passed.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} of {self.version} ({self.status})"


class ReplayItem(models.Model):
    """One ticket of a replay: what the version would have done beside what the original run did."""

    class Verdict(models.TextChoices):
        PENDING = "pending", "Not replayed yet"
        SAME = "same", "Same as the original"
        DIFFERS = "differs", "Differs from the original"
        WORSE = "worse", "Repeats a rejected call or drops an approved one"
        NO_RECORDING = "no_recording", "No recorded run to replay"
        ERROR = "error", "The replay failed"

    class CaseResult(models.TextChoices):
        NONE = "", "Not a suite case"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (no recorded run)"

    replay = models.ForeignKey(Replay, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="+")
    source_run = models.ForeignKey(AgentRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    case = models.ForeignKey(RegressionCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="results")
    verdict = models.CharField(max_length=16, choices=Verdict.choices, default=Verdict.PENDING)
    case_result = models.CharField(max_length=16, choices=CaseResult.choices, blank=True)
    failures = models.JSONField(default=list, blank=True, help_text="What a suite case expected and did not get.")
    outcome = models.CharField(max_length=32, blank=True, help_text="completed or escalated, as the replay ended.")
    final_text = models.TextField(blank=True)
    transcript = models.JSONField(default=list, blank=True)
    effects = models.JSONField(default=list, blank=True, help_text="Would-be writes and helpdesk calls, compared.")
    original = models.JSONField(default=dict, blank=True, help_text="The original run's outcome and calls.")
    digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the replay's calls and outcome.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["replay_id", "position"]
        constraints = [models.UniqueConstraint(fields=["replay", "position"], name="replay_item_position_unique")]

    def __str__(self) -> str:
        return f"item {self.position} of replay {self.replay_id} ({self.verdict})"
