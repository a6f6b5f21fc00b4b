"""Every non-trivial read of the sandbox's Admin API."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.models import FaultSwitch, Invoice, Subscription, Tenant, TenantConfig, TenantUser
from sandbox.services import TENANT_NOT_FOUND, USER_NOT_FOUND, TenantNotFound, UserNotFound

BILLING_INVOICE_COUNT = 6


@dataclass(frozen=True)
class BillingSnapshot:
    tenant: Tenant
    subscription: Subscription | None
    invoices: list[Invoice]


def tenant_get(*, tenant_id: str) -> Tenant:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        raise TenantNotFound(TENANT_NOT_FOUND.format(tenant_id=tenant_id))
    return tenant


def tenant_user_get(*, tenant_id: str, email: str) -> TenantUser:
    """The tenant's user with this email, compared case-insensitively as logins are."""
    tenant_get(tenant_id=tenant_id)
    user = TenantUser.objects.filter(tenant_id=tenant_id, email__iexact=email).order_by("id").first()
    if user is None:
        raise UserNotFound(USER_NOT_FOUND.format(tenant_id=tenant_id, email=email))
    return user


def tenant_config_get(*, tenant_id: str) -> dict[str, str]:
    tenant_get(tenant_id=tenant_id)
    return dict(TenantConfig.objects.filter(tenant_id=tenant_id).order_by("key").values_list("key", "value"))


def tenant_billing_get(*, tenant_id: str) -> BillingSnapshot:
    """The tenant's current (latest) subscription and its newest invoices."""
    tenant = tenant_get(tenant_id=tenant_id)
    subscription = Subscription.objects.filter(tenant_id=tenant_id).order_by("-id").first()
    invoices = list(Invoice.objects.filter(tenant_id=tenant_id).order_by("-issued_at", "-id")[:BILLING_INVOICE_COUNT])
    return BillingSnapshot(tenant=tenant, subscription=subscription, invoices=invoices)


def fault_switch_get() -> FaultSwitch:
    """The faults in force; an unsaved all-defaults switch (no faults) when none was ever set."""
    return FaultSwitch.objects.filter(pk=1).first() or FaultSwitch(pk=1)
