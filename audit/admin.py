"""The audit log in the Django admin, and the rule every other admin follows.

The rule, one for the whole product: records of what happened (tickets, comments, webhook events, runs, steps,
proposed actions, ratings, notifications, audit events) cannot be deleted in the admin at all; configuration
(workflows, tenant links, helpdesk user profiles, runbooks, config patches, API tokens, users, groups) can, and
every change or deletion made there leaves an AuditEvent (`admin.created`, `admin.changed`, `admin.deleted`)
naming the admin and the values.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.services import audit_event_record

# Never copied into an audit payload: secrets, or hashes of them.
_SECRET_FIELDS = frozenset({"password", "token_hash"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, models.Model):
        return {"id": value.pk, "repr": str(value)}
    if isinstance(value, QuerySet | list | tuple | set):
        return [_jsonable(item) for item in value]
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, default=str))


def _snapshot(obj: models.Model) -> dict[str, Any]:
    return {
        field.attname: _jsonable(getattr(obj, field.attname))
        for field in obj._meta.concrete_fields
        if field.name not in _SECRET_FIELDS
    }


class AuditedModelAdmin(admin.ModelAdmin):
    """Configuration edited in the admin: every save and deletion is recorded, in the same transaction."""

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self.audit_save(request, obj, form, change)

    def audit_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool, skip: tuple = ()) -> None:
        changed = [name for name in form.changed_data if name not in skip and name not in _SECRET_FIELDS]
        if change and not changed:
            return
        audit_event_record(
            verb="admin.changed" if change else "admin.created",
            obj=obj,
            payload={"fields": {name: _jsonable(form.cleaned_data.get(name)) for name in changed}},
            user=request.user,
        )

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            self._audit_delete(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                self._audit_delete(request, obj)
            super().delete_queryset(request, queryset)

    def _audit_delete(self, request: HttpRequest, obj: models.Model) -> None:
        audit_event_record(
            verb="admin.deleted", obj=obj, payload={"repr": str(obj), "values": _snapshot(obj)}, user=request.user
        )


class HistoryAdminMixin:
    """What happened is never deleted from the admin (edits, where a model allows them, are audited)."""

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_kind", "actor", "verb", "object_type", "object_id", "payload_hash"]
    list_filter = ["actor_kind", "verb", "object_type"]
    search_fields = ["object_id", "payload_hash", "verb"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
