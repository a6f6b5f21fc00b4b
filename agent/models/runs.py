"""A run on a ticket: its transcript and the tool calls that need or record a decision."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agent.models.workflows import Workflow
from agent.policy import Risk
from tickets.models import Ticket, TicketComment


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
    # Kept by agent.services.governance.rating_set (the only way a rating is made): the tickets view's "Shadow drafts
    # to rate" reads a partial index on it instead of looking for a rating of each run's proposals and steps.
    rated = models.BooleanField(
        default=False, db_default=False, help_text="Someone rated one of its proposals or drafted notes or replies."
    )  # db_default: hand-written INSERTs of runs name only the columns they set
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
            # The dashboard's usage of runs still open (those that ended are in agent.models.rollups).
            models.Index(fields=["created_at"], condition=models.Q(finished_at__isnull=True), name="agent_run_open"),
            # The tickets view's evidence filter of one workflow and its capped count: the workflow's runs in ticket
            # order, each with its id for its proposals, read from the index alone.
            models.Index(fields=["workflow", "ticket"], include=["id"], name="agent_run_workflow_ticket"),
            # The tickets view's "Shadow drafts to rate" and its count: shadow runs that drafted and nobody rated.
            models.Index(
                fields=["ticket"],
                condition=models.Q(phase="shadow", status="completed", rated=False),
                name="agent_run_unrated_drafts",
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
        indexes = [
            # The knowledge gaps page's "missing tool": the few answers saying a tool the model asked for does not
            # exist (agent.catalogue.UNKNOWN_TOOL), without reading every observation of the window.
            models.Index(
                fields=["run"],
                condition=models.Q(kind="observation", tool_output__message__startswith="There is no tool named"),
                name="step_unknown_tool",
            )
        ]

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
