from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from agent.models import (
    AgentRun,
    ApiOperation,
    ConfigPatch,
    LatencyWeek,
    Notification,
    ProposedAction,
    Rating,
    RegressionCase,
    Replay,
    ReplayItem,
    Runbook,
    Step,
    ToolContract,
    UsageWeek,
    Workflow,
    WorkflowVersion,
)
from agent.services.governance import POLICY_FIELDS, rating_run_mark, workflow_save
from audit.admin import AuditedModelAdmin, HistoryAdminMixin


@admin.register(Workflow)
class WorkflowAdmin(AuditedModelAdmin):
    list_display = ["name", "slug", "phase", "enabled", "updated_at"]
    list_filter = ["phase", "enabled"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["reviewers"]

    # Phase changes are promotions: made on the workflows page with a reason, through the gated service, and
    # audited; a workflow added here starts in shadow.
    readonly_fields = ["phase"]

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        # Pre-approved tools and their limits decide what runs without a human: workflow_save audits those as
        # workflow.policy_changed; the other fields get the admin's usual record.
        with transaction.atomic():
            workflow_save(workflow=obj, changed_fields=list(form.changed_data), user=request.user)
            self.audit_save(request, obj, form, change, skip=POLICY_FIELDS)


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["index", "kind", "tool_name", "content", "latency_ms", "tokens_in", "tokens_out"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(AgentRun)
class AgentRunAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["pk", "ticket", "workflow", "phase", "status", "engine", "created_at"]
    list_filter = ["status", "phase", "workflow"]
    list_select_related = ["ticket", "workflow"]
    readonly_fields = [f.name for f in AgentRun._meta.fields]
    inlines = [StepInline]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(Step)
class StepAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["run", "index", "kind", "tool_name", "latency_ms", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["run"]
    readonly_fields = [f.name for f in Step._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(ProposedAction)
class ProposedActionAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["pk", "run", "tool", "risk", "status", "verification", "decided_by", "created_at"]
    list_filter = ["status", "risk", "verification", "tool"]
    list_select_related = ["run", "decided_by"]
    readonly_fields = [f.name for f in ProposedAction._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(Rating)
class RatingAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["user", "value", "action", "step", "created_at"]
    list_filter = ["value"]
    list_select_related = ["user", "action", "step"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:  # noqa: ANN001
        # What a rating is of stays put: its run's `rated` mark (rating_run_mark) would otherwise go stale.
        return ["action", "step"] if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            rating_run_mark(rating=obj)


@admin.register(Runbook)
class RunbookAdmin(AuditedModelAdmin):
    list_display = ["title", "slug", "updated_at"]
    search_fields = ["title", "slug", "body"]
    prepopulated_fields = {"slug": ["title"]}


@admin.register(ConfigPatch)
class ConfigPatchAdmin(AuditedModelAdmin):
    list_display = ["patch_id", "title", "config_key", "value", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["patch_id", "title", "config_key"]


@admin.register(Notification)
class NotificationAdmin(HistoryAdminMixin, AuditedModelAdmin):
    """What reviewers were told, and whether it reached them: read-only, for troubleshooting Slack and mail."""

    list_display = ["action", "kind", "channel", "status", "attempts", "sent_at", "created_at"]
    list_filter = ["kind", "channel", "status"]
    readonly_fields = ["action", "kind", "channel", "status", "recipients", "error", "attempts", "sent_at"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(HistoryAdminMixin, AuditedModelAdmin):
    """Versions are written by the console when a workflow's content changes, and never changed after."""

    list_display = ["workflow", "number", "engine", "created_at"]
    list_filter = ["workflow"]
    list_select_related = ["workflow"]
    readonly_fields = [f.name for f in WorkflowVersion._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(RegressionCase)
class RegressionCaseAdmin(AuditedModelAdmin):
    """Cases come from reviewers' feedback; admins may write their own (origin "seeded") or retire one."""

    list_display = ["pk", "workflow", "ticket", "origin", "active", "created_at"]
    list_filter = ["workflow", "origin", "active"]
    list_select_related = ["workflow", "ticket"]
    raw_id_fields = ["ticket", "source_run", "source_action", "source_rating"]


@admin.register(Replay)
class ReplayAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["pk", "workflow", "version", "kind", "status", "done", "total", "passed", "created_at"]
    list_filter = ["kind", "status", "workflow"]
    list_select_related = ["workflow", "version"]
    readonly_fields = [f.name for f in Replay._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(ReplayItem)
class ReplayItemAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["replay", "position", "ticket", "verdict", "case_result"]
    list_filter = ["verdict", "case_result"]
    list_select_related = ["replay", "ticket"]
    readonly_fields = [f.name for f in ReplayItem._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(ApiOperation)
class ApiOperationAdmin(HistoryAdminMixin, AuditedModelAdmin):
    """The imported catalogue (manage.py import_openapi). Only `picked` is edited here, and audited; operations
    come and go with the document, never by hand."""

    list_display = ["operation_id", "method", "path", "picked", "unsupported", "imported_at"]
    list_filter = ["picked", "method"]
    list_editable = ["picked"]
    search_fields = ["operation_id", "path", "summary"]
    readonly_fields = ["operation_id", "method", "path", "summary", "definition", "fingerprint", "unsupported",
                       "source", "imported_at"]  # fmt: skip

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False


@admin.register(ToolContract)
class ToolContractAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Every version of every effect contract (manage.py import_contracts). Versions are never edited."""

    list_display = ["name", "version", "active", "risk", "operation_id", "source", "created_at"]
    list_filter = ["active", "risk"]
    search_fields = ["name", "operation_id"]
    readonly_fields = [f.name for f in ToolContract._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class RollupAdmin(admin.ModelAdmin):
    """The dashboard's weekly rollups, read only: the services keep them, `manage.py dashboard_rebuild` recomputes."""

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(UsageWeek)
class UsageWeekAdmin(RollupAdmin):
    list_display = ["week", "engine", "runs", "tickets", "tokens_in", "tokens_out", "cache_read_tokens",
                    "cache_write_tokens"]  # fmt: skip
    list_filter = ["week"]


@admin.register(LatencyWeek)
class LatencyWeekAdmin(RollupAdmin):
    list_display = ["week", "kind", "workflow_id", "phase", "bucket", "count", "seconds"]
    list_filter = ["kind", "week"]
