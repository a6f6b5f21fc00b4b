from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from agent.policy import Risk
from tickets.models import Ticket, TicketComment


def validate_tool_limits(value: object) -> None:
    from agent.limits import limits_errors

    if errors := limits_errors(value):
        raise ValidationError(errors)


def validate_tool_names(value: object) -> None:
    from agent.tools import tool_names_errors

    if errors := tool_names_errors(value):
        raise ValidationError(errors)


def validate_playbook(value: object) -> None:
    from agent.llm.offline import playbook_errors

    if errors := playbook_errors(value):
        raise ValidationError(errors)


class Workflow(models.Model):
    """A kind of ticket the agent handles, promoted by admins through shadow -> triage -> autonomous."""

    class Phase(models.TextChoices):
        SHADOW = "shadow", "Shadow"
        TRIAGE = "triage", "Triage"
        AUTONOMOUS = "autonomous", "Autonomous"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.SHADOW)
    runbook = models.TextField(help_text="The steps the agent follows; shown to the model as its instructions.")
    match_tags = models.JSONField(default=list, blank=True, help_text="Ticket tags that select this workflow.")
    match_keywords = models.JSONField(
        default=list, blank=True, help_text="Words in the subject or description that select this workflow."
    )
    playbook = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_playbook],
        help_text='The runbook as steps the offline engine follows: [{"tool", "args", "why", "alternative", '
        '"when", "otherwise"}]. "when" runs a step only if an earlier one found something, e.g. '
        '{"tool": "search_logs", "field": "count", "above": 0}.',
    )
    tools = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_tool_names],
        help_text="The tools this workflow's model sees, by name (checked against the catalogue on save). "
        "Empty: every tool.",
    )
    preapproved_tools = models.JSONField(
        default=list, blank=True, help_text="Write tools that run without a human in the autonomous phase."
    )
    tool_limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_tool_limits],
        help_text='Limits of pre-approved tools per argument, summed over a run: {"extend_trial": {"days": '
        '{"max": 14, "max_per_tenant_per_day": 20}}}; also "min" and "allowed" per call.',
    )
    enabled = models.BooleanField(default=True)
    approval_sla_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How long a proposal may wait for a decision before it escalates (note, humans pod, notification). "
        "Empty: APPROVAL_SLA_MINUTES. 0: never.",
    )
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="reviewed_workflows",
        help_text="Who is e-mailed when a proposal waits. Empty: every active member of the reviewers group.",
    )
    slack_channel = models.CharField(
        max_length=100,
        blank=True,
        help_text="Slack channel for this workflow's approvals when a bot token is set. Empty: SLACK_CHANNEL.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.phase})"


class AgentRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        COMPLETED = "completed", "Completed"
        ESCALATED = "escalated", "Escalated to humans"
        TAKEN_OVER = "taken_over", "Taken over by a reviewer"
        # No "failed": a run that cannot go on (an error, a model that cannot answer, too many restarts) is
        # escalated, so a person always picks it up. agent/lifecycle.py holds every move between these.

    class Outcome(models.TextChoices):
        """How a human closed an escalated or taken-over run."""

        RESOLVED = "resolved", "Resolved by a human"
        NO_ACTION = "no_action", "No action needed"
        DUPLICATE = "duplicate", "Duplicate"
        HANDED_OFF = "handed_off", "Handed to engineering"

    class Trigger(models.TextChoices):
        TICKET_CREATED = "ticket_created", "Ticket created"
        CUSTOMER_COMMENT = "customer_comment", "Customer follow-up"
        MANUAL = "manual", "Started by hand"

    class MatchedOn(models.TextChoices):
        # Tags are set by the company's own helpdesk rules: a trusted signal. Keywords come from what the customer
        # wrote: a workflow chosen on them alone runs at most in triage.
        TAGS = "tags", "Helpdesk tags"
        KEYWORDS = "keywords", "Keywords in the customer's text"
        NONE = "", "No workflow matched"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="runs")
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    phase = models.CharField(
        max_length=16, choices=Workflow.Phase.choices, help_text="The phase in force when the run started."
    )
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    matched_on = models.CharField(
        max_length=16, choices=MatchedOn.choices, blank=True, help_text="What chose the workflow."
    )
    version = models.ForeignKey(
        "WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The workflow version the run ran (pinned when it starts).",
    )
    trigger_comment = models.ForeignKey(
        TicketComment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="follow_up_runs",
        help_text="For a follow-up: the customer comment that started it.",
    )
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Bedrock model ids and inference-profile ARNs run to 2048 characters.
    engine = models.CharField(max_length=2100, blank=True, help_text="offline or bedrock:<model id or ARN>")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    # Of tokens_in: read from Bedrock's prompt cache, and written to it (each billed at its own price).
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    turns = models.PositiveIntegerField(default=0, help_text="Model turns taken so far.")
    active_ms = models.PositiveBigIntegerField(default=0, help_text="Time spent working, not waiting for people.")
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The outbox: a run is "dispatched" (a task message meant to advance it) in the same transaction as the change
    # that needs the advance; the message carries this token, so a newer dispatch supersedes an older message. The
    # reconciler re-dispatches a run whose message never started (broker down, a worker killed between taking a
    # message and recording it) and counts each recovery.
    dispatch_token = models.CharField(max_length=32, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    recoveries = models.PositiveIntegerField(default=0, help_text="Times the reconciler had to restart this run.")
    status_reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    outcome_note = models.TextField(blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["ticket", "status"], name="agent_run_ticket_status"),
            # The queue's escalation and working lists: by status, most recently active first.
            models.Index(fields=["status", "updated_at"], name="agent_run_status_updated"),
            # The same lists and their counts whatever the table's size: open escalations (RUN_CLOSABLE without
            # an outcome) and working runs (RUN_WORKING), each a small partial index in the lists' order.
            models.Index(
                fields=["updated_at", "id"],
                condition=models.Q(status__in=["escalated", "taken_over"], outcome=""),
                name="agent_run_open_escalations",
            ),
            models.Index(
                fields=["updated_at", "id"],
                condition=models.Q(status__in=["queued", "running"]),
                name="agent_run_working",
            ),
        ]
        constraints = [
            # One automatic run per ticket, however often the ticket.created event is delivered.
            models.UniqueConstraint(
                fields=["ticket"],
                condition=models.Q(trigger="ticket_created"),
                name="agent_run_one_per_created_ticket",
            ),
            # One follow-up per customer comment, however often its event is delivered.
            models.UniqueConstraint(
                fields=["trigger_comment"],
                condition=models.Q(trigger_comment__isnull=False),
                name="agent_run_one_per_trigger_comment",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} on ticket {self.ticket_id} ({self.status})"


class Step(models.Model):
    """One entry of a run's transcript, persisted the moment it happens."""

    class Kind(models.TextChoices):
        THOUGHT = "thought", "Thought"
        ACTION = "action", "Action"
        OBSERVATION = "observation", "Observation"
        FINAL = "final", "Final"

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    turn = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tool_call_id = models.CharField(max_length=100, blank=True)
    content = models.TextField(blank=True)
    tool_name = models.CharField(max_length=64, blank=True)
    tool_input = models.JSONField(null=True, blank=True)
    tool_output = models.JSONField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    stop_reason = models.CharField(max_length=64, blank=True, help_text="Why the model's turn ended (Converse).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="step_run_index_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.index} {self.kind}"


class ProposedAction(models.Model):
    """A tool call the agent wants to make that needs a decision, or that records what ran on its own."""

    class Status(models.TextChoices):
        DRY_RUN = "dry_run", "Dry run (never executable)"
        PENDING = "pending", "Awaiting decision"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXECUTED = "executed", "Executed"
        FAILED = "failed", "Execution failed"
        # Sent, but whether it took effect is unknown (a timeout, a 5xx, an answer in a changed shape) and the
        # verifier could not tell either. Never retried blindly; a repeat reconciles it first.
        UNCERTAIN = "uncertain", "Outcome unknown"
        RESPONDED = "responded", "Answered with feedback (not executed)"
        WITHDRAWN = "withdrawn", "Withdrawn (the run ended)"

    class Verification(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        PENDING = "pending", "Pending"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="actions")
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    tool = models.CharField(max_length=64)
    tool_call_id = models.CharField(max_length=100, blank=True)
    args = models.JSONField(default=dict, blank=True)  # {} is a valid call (solve_ticket takes no arguments)
    args_hash = models.CharField(max_length=64)
    idempotency_key = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="Sent to the Admin API: a write happens once."
    )
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="retries",
        help_text="The run's first call with the same tool and arguments: a repeat sends its Idempotency-Key.",
    )
    approved_args_hash = models.CharField(
        max_length=64, blank=True, help_text="The hash of exactly the args that were approved; execution must match."
    )
    original_args = models.JSONField(null=True, blank=True, help_text="The model's args when a reviewer edited them.")
    rationale = models.TextField(blank=True)
    risk = models.CharField(max_length=16, choices=Risk.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    execution_result = models.JSONField(null=True, blank=True)
    execution_started_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    verification = models.CharField(max_length=16, choices=Verification.choices, default=Verification.NOT_REQUIRED)
    verification_result = models.JSONField(null=True, blank=True)
    current_state = models.JSONField(
        null=True, blank=True, help_text="What the tool's state read saw while the proposal waited (for the diff)."
    )
    sla_due_at = models.DateTimeField(null=True, blank=True, help_text="When a pending proposal escalates.")
    sla_escalated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The SLA sweep's query: overdue proposals not yet escalated.
            models.Index(
                fields=["sla_due_at"],
                condition=models.Q(status="pending", sla_escalated_at__isnull=True),
                name="proposed_action_sla_open",
            ),
            # The queue's pending list (oldest first) and its counts, read from the index alone.
            models.Index(
                fields=["created_at", "id"],
                include=["sla_due_at", "run"],
                condition=models.Q(status="pending"),
                name="proposed_action_pending",
            ),
            # The dashboard's approval latency: decisions people made, by when, read from the index alone.
            models.Index(
                fields=["decided_at"],
                include=["created_at"],
                condition=models.Q(decided_by__isnull=False),
                name="proposed_action_decided",
            ),
        ]
        constraints = [
            # One action per model tool call: a resumed run finds it instead of proposing or running it twice.
            models.UniqueConstraint(
                fields=["run", "tool_call_id"],
                condition=~models.Q(tool_call_id=""),
                name="proposed_action_one_per_tool_call",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status}) in run {self.run_id}"

    @property
    def is_dry_run(self) -> bool:
        return self.status == self.Status.DRY_RUN

    @property
    def sent_key(self) -> uuid.UUID:
        """The Idempotency-Key (and helpdesk marker) this call is sent with: one per intent in a run."""
        return self.retry_of.idempotency_key if self.retry_of_id else self.idempotency_key

    @property
    def may_have_applied(self) -> bool:
        """Whether this call has, or may have, taken effect (or is about to): what a run's budget counts."""
        if self.status in (self.Status.APPROVED, self.Status.EXECUTED, self.Status.UNCERTAIN):
            return True
        return self.status == self.Status.FAILED and bool((self.execution_result or {}).get("uncertain"))


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


class Runbook(models.Model):
    """An admin-curated how-to the agent can search (search_runbooks), beside the workflows' own runbooks."""

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    tags = models.JSONField(default=list, blank=True, help_text="Words that help the search find this runbook.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class ConfigPatch(models.Model):
    """A known configuration fix, curated by admins: the only config changes apply_config_patch can make."""

    patch_id = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="When this fix applies; shown to the model.")
    config_key = models.CharField(max_length=100)
    value = models.CharField(max_length=500)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["patch_id"]

    def __str__(self) -> str:
        return f"{self.patch_id}: {self.config_key}={self.value}"


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


# --- Proof before promotion: workflow versions, replays, regression suites --------------------------------------


class WorkflowVersion(models.Model):
    """What a workflow's runs actually ran with — runbook, playbook, tool set, contracts, model and prompt — frozen.
    A change to any of them makes a new version; a version is never changed after it is written, so the evidence
    counted for it (agent.selectors.version_evidence_many) is evidence about exactly this content."""

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


# The company's configuration lives in its own module; importing it here makes its models the agent app's.
from agent.company.models import ApiOperation, ToolContract  # noqa: E402, F401
