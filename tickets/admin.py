from __future__ import annotations

from django.contrib import admin

from audit.admin import AuditedModelAdmin, HistoryAdminMixin
from tickets.models import TenantLink, Ticket, TicketComment, WebhookEvent


@admin.register(TenantLink)
class TenantLinkAdmin(AuditedModelAdmin):
    list_display = ["organization_id", "organization_name", "tenant_id", "created_at"]
    search_fields = ["organization_id", "organization_name", "tenant_id"]


class TicketCommentInline(admin.TabularInline):
    model = TicketComment
    extra = 0
    fields = ["created_at", "author_kind", "public", "body"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(Ticket)
class TicketAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = [
        "external_id",
        "source",
        "subject",
        "organization_id",
        "status",
        "priority",
        "group_id",
        "created_at",
    ]
    list_filter = ["source", "status", "priority"]
    search_fields = ["external_id", "subject", "organization_id"]
    list_select_related = ["tenant_link"]
    # Status only changes through services (audited), never by editing the row.
    readonly_fields = ["source", "external_id", "status", "solved_at", "raw_payload", "created_at", "updated_at"]
    inlines = [TicketCommentInline]


@admin.register(TicketComment)
class TicketCommentAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["ticket", "author_kind", "public", "created_at"]
    list_filter = ["author_kind", "public"]
    list_select_related = ["ticket"]
    readonly_fields = ["ticket", "external_id", "public", "author_kind", "author_id", "created_at"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(HistoryAdminMixin, AuditedModelAdmin):
    list_display = ["received_at", "source", "event_id", "event_type", "handled", "ticket"]
    list_filter = ["source", "event_type", "handled"]
    search_fields = ["event_id"]
    list_select_related = ["ticket"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False
