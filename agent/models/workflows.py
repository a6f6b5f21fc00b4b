"""What the agent is told to do: workflows, the runbooks it can search, the configuration fixes it may apply."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from agent.models.validators import validate_playbook, validate_tool_limits, validate_tool_names

NOT_IN_TOOLS = "Not in this workflow's tools ({tools}): {names}. Add them to its tools, or take them out here."


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

    def clean(self) -> None:
        """With its own tool list, a workflow may pre-approve, limit and follow in its playbook only those tools:
        any other would be refused when called, so it is refused here, where the admin can mend it."""
        super().clean()
        if not isinstance(self.tools, list) or not self.tools:
            return
        own = set(self.tools)
        used = {
            "preapproved_tools": self.preapproved_tools if isinstance(self.preapproved_tools, list) else [],
            "tool_limits": list(self.tool_limits) if isinstance(self.tool_limits, dict) else [],
            "playbook": [step.get("tool") for step in self.playbook if isinstance(step, dict)]
            if isinstance(self.playbook, list)
            else [],
        }
        errors = {}
        for field, names in used.items():
            outside = sorted({name for name in names if isinstance(name, str) and name not in own})
            if outside:
                errors[field] = NOT_IN_TOOLS.format(names=", ".join(outside), tools=", ".join(self.tools))
        if errors:
            raise ValidationError(errors)


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
