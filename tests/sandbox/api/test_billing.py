from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.sandbox.factories import InvoiceFactory, SubscriptionFactory, TenantFactory

pytestmark = pytest.mark.django_db


def test_it_reads_the_subscription_and_the_newest_six_invoices(admin_api) -> None:
    tenant = TenantFactory(id="umbrella", plan="enterprise", status="active")
    SubscriptionFactory(tenant=tenant, plan="growth", status="canceled")  # an older subscription
    SubscriptionFactory(
        tenant=tenant, plan="enterprise", status="active", seats=120, monthly_amount_cents=468_000, currency="EUR"
    )
    now = timezone.now()
    for months in range(8):
        InvoiceFactory(tenant=tenant, number=f"INV-U-{months}", issued_at=now - timedelta(days=30 * months))
    InvoiceFactory(number="INV-OTHER", tenant=TenantFactory(id="acme"), issued_at=now)
    response = admin_api.get("/tenants/umbrella/billing")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tenant_id", "plan", "status", "subscription", "invoices"}
    assert (body["tenant_id"], body["plan"], body["status"]) == ("umbrella", "enterprise", "active")
    assert {k: v for k, v in body["subscription"].items() if k != "current_period_end"} == {
        "plan": "enterprise",
        "status": "active",
        "seats": 120,
        "monthly_amount_cents": 468_000,
        "currency": "EUR",
    }
    assert body["subscription"]["current_period_end"] is not None
    assert [invoice["number"] for invoice in body["invoices"]] == [f"INV-U-{m}" for m in range(6)]
    assert set(body["invoices"][0]) == {"number", "amount_cents", "currency", "status", "issued_at", "paid_at"}


def test_it_answers_null_and_empty_without_billing(admin_api) -> None:
    TenantFactory(id="hooli")
    body = admin_api.get("/tenants/hooli/billing").json()

    assert body["subscription"] is None
    assert body["invoices"] == []
