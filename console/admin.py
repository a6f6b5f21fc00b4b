from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from agentconsole.roles import ADMINS, REVIEWERS
from audit.admin import AuditedModelAdmin
from audit.services import audit_event_record
from console.auth import api_token_revoke
from console.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "prefix", "token_hash", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", *readonly_fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A token is issued by `manage.py api_token_issue`, the only place it is ever shown.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for api_token in queryset:
            api_token_revoke(api_token=api_token, user=request.user)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


# Who may review and who may administer is configuration too: user and group changes are audited like the rest.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedModelAdmin, UserAdmin):
    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # the form was valid and saved
            user = User.objects.get(pk=id)
            audit_event_record(verb="admin.password_changed", obj=user, payload={}, user=request.user)
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        # The two role groups are what every permission check reads; deleting one would lock everyone out.
        if obj is not None and obj.name in (ADMINS, REVIEWERS):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Group]) -> None:
        # "Delete selected" asks has_delete_permission without an object: keep the role groups out here too.
        super().delete_queryset(request, queryset.exclude(name__in=(ADMINS, REVIEWERS)))
