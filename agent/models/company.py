"""The company as configured: its Admin API's operations (imported from its OpenAPI document) and the versioned
effect contracts that make tools of them (agent/company/ reads and writes them)."""

from __future__ import annotations

from django.db import models


class ApiOperation(models.Model):
    """One operation of the company's OpenAPI document, resolved. An admin picks the ones tools may call."""

    operation_id = models.CharField(max_length=200, unique=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    summary = models.CharField(max_length=500, blank=True)
    definition = models.JSONField(help_text="The operation as a tool reads it: argument locations and schemas.")
    fingerprint = models.CharField(max_length=16, help_text="Changes when what is sent or received changes.")
    picked = models.BooleanField(default=False, help_text="Tools may be declared on this operation.")
    unsupported = models.CharField(max_length=500, blank=True, help_text="Why no tool can call it.")
    source = models.CharField(max_length=1000, blank=True, help_text="The document it was imported from.")
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path", "method"]
        verbose_name = "API operation"

    def __str__(self) -> str:
        return f"{self.operation_id} ({self.method} {self.path})"


class ToolContract(models.Model):
    """One version of one tool's effect contract. Versions are never edited: a changed contract is a new row, and
    the newest active row of a name is the tool the agent uses."""

    name = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    operation_id = models.CharField(max_length=200)
    risk = models.CharField(max_length=8)
    spec = models.JSONField(help_text="The contract as declared in the file.")
    compiled = models.JSONField(help_text="Checked against the catalogue: operations snapshotted, argument schema.")
    source = models.CharField(max_length=1000, blank=True, help_text="The contract file it was imported from.")
    active = models.BooleanField(default=True, help_text="The newest version of a tool still in the file.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="toolcontract_name_version_unique"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(active=True), name="toolcontract_one_active_per_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}{'' if self.active else ' (retired)'}"
