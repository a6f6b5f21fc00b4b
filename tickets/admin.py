from __future__ import annotations

from django.contrib import admin

from tickets.models import HelpdeskUser, TenantLink, Ticket, TicketComment, WebhookEvent


@admin.register(TenantLink)
class TenantLinkAdmin(admin.ModelAdmin):
    list_display = ["organization_id", "organization_name", "tenant_id", "source", "synced_from", "updated_at"]
    list_filter = ["source"]
    search_fields = ["organization_id", "organization_name", "tenant_id"]
    readonly_fields = ["source", "synced_from", "created_at", "updated_at"]

    def save_model(self, request, obj: TenantLink, form, change: bool) -> None:  # noqa: ANN001
        # A link an admin saves is theirs: manual links win over what is synced from the helpdesk organization.
        obj.source = TenantLink.Source.MANUAL
        obj.synced_from = ""
        super().save_model(request, obj, form, change)


@admin.register(HelpdeskUser)
class HelpdeskUserAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "email", "locale"]
    search_fields = ["external_id", "name", "email"]


class TicketCommentInline(admin.TabularInline):
    model = TicketComment
    extra = 0
    fields = ["created_at", "author_kind", "author_name", "public", "delivery", "body", "attachments"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
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
    readonly_fields = [
        "source", "external_id", "status", "solved_at", "raw_payload", "context_version", "context_fetched_at",
        "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [TicketCommentInline]


@admin.register(TicketComment)
class TicketCommentAdmin(admin.ModelAdmin):
    list_display = ["ticket", "author_kind", "public", "delivery", "created_at"]
    list_filter = ["author_kind", "public", "delivery"]
    list_select_related = ["ticket"]
    readonly_fields = [
        "ticket", "external_id", "public", "author_kind", "author_id", "author_name", "attachments", "marker",
        "delivery", "created_at",
    ]  # fmt: skip


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "source", "event_id", "event_type", "handled", "ticket"]
    list_filter = ["source", "event_type", "handled"]
    search_fields = ["event_id"]
    list_select_related = ["ticket"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False
