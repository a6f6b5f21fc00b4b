"""The sandbox in the Django admin: read-only windows on the company's data; the fault switch is editable."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from sandbox.models import (
    CacheReset,
    FaultSwitch,
    IdempotencyRecord,
    Invoice,
    LogEvent,
    LoginAttempt,
    Subscription,
    Tenant,
    TenantConfig,
    TenantUser,
)
from sandbox.services import InvalidFaults, fault_switch_set, fault_switch_validate


class ReadOnlyAdmin(admin.ModelAdmin):
    """The company's data changes through its Admin API (or the seed), never by hand here."""

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


class TenantConfigInline(ReadOnlyInline):
    model = TenantConfig
    fields = ["key", "value", "updated_at"]
    readonly_fields = fields


class TenantUserInline(ReadOnlyInline):
    model = TenantUser
    fields = ["email", "role", "locked", "failed_logins", "locked_at", "last_login_at"]
    readonly_fields = fields


@admin.register(Tenant)
class TenantAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "plan", "status", "trial_ends_at", "cache_version", "cache_reset_at", "region"]
    list_filter = ["plan", "status", "region"]
    search_fields = ["id", "name"]
    inlines = [TenantConfigInline, TenantUserInline]


@admin.register(TenantConfig)
class TenantConfigAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "key", "value", "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__id", "key", "value"]


@admin.register(TenantUser)
class TenantUserAdmin(ReadOnlyAdmin):
    list_display = ["email", "tenant", "role", "locked", "failed_logins", "locked_at", "last_login_at"]
    list_filter = ["locked", "role"]
    list_select_related = ["tenant"]
    search_fields = ["email", "tenant__id"]
    exclude = ["password_hash"]


@admin.register(LoginAttempt)
class LoginAttemptAdmin(ReadOnlyAdmin):
    list_display = ["attempted_at", "tenant", "email", "success", "ip_address"]
    list_filter = ["success"]
    list_select_related = ["tenant"]
    search_fields = ["email", "tenant__id", "ip_address"]
    date_hierarchy = "attempted_at"


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "plan", "status", "seats", "monthly_amount_cents", "currency", "current_period_end"]
    list_filter = ["plan", "status", "currency"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__id"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["number", "tenant", "amount_cents", "currency", "status", "issued_at", "paid_at"]
    list_filter = ["status", "currency"]
    list_select_related = ["tenant"]
    search_fields = ["number", "tenant__id"]
    date_hierarchy = "issued_at"


@admin.register(LogEvent)
class LogEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "tenant", "level", "message"]
    list_filter = ["level", "log_group"]
    list_select_related = ["tenant"]
    search_fields = ["message", "tenant__id"]
    date_hierarchy = "timestamp"


@admin.register(CacheReset)
class CacheResetAdmin(ReadOnlyAdmin):
    list_display = ["performed_at", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__id"]

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return True  # deleting the last reset lifts the rate limit during a demo


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "key", "method", "path", "status_code"]
    list_filter = ["method", "status_code"]
    search_fields = ["key", "path"]

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return True  # forgetting a key lets a demo replay a request for real


class FaultSwitchForm(forms.ModelForm):
    class Meta:
        model = FaultSwitch
        fields = ["error_rate", "error_status", "latency_ms", "changed_shape", "swallow_writes"]

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors:
            try:
                fault_switch_validate(
                    error_rate=cleaned["error_rate"],
                    error_status=cleaned["error_status"],
                    latency_ms=cleaned["latency_ms"],
                )
            except InvalidFaults as exc:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


@admin.register(FaultSwitch)
class FaultSwitchAdmin(admin.ModelAdmin):
    form = FaultSwitchForm
    list_display = ["__str__", "error_rate", "error_status", "latency_ms", "changed_shape", "swallow_writes"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return not FaultSwitch.objects.exists()  # one row (pk=1) is in force

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        saved = fault_switch_set(**{name: form.cleaned_data[name] for name in FaultSwitchForm.Meta.fields})
        obj.pk = saved.pk
