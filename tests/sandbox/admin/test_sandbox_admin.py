from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

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
from tests.factories import UserFactory
from tests.sandbox.factories import (
    CacheResetFactory,
    InvoiceFactory,
    LogEventFactory,
    LoginAttemptFactory,
    SubscriptionFactory,
    TenantConfigFactory,
    TenantFactory,
    TenantUserFactory,
)

pytestmark = pytest.mark.django_db

MODELS = [
    Tenant,
    TenantConfig,
    TenantUser,
    LoginAttempt,
    Subscription,
    Invoice,
    LogEvent,
    CacheReset,
    IdempotencyRecord,
]


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("model", [*MODELS, FaultSwitch])
def test_it_lists_every_sandbox_model(superuser, model) -> None:
    response = superuser.get(reverse(f"admin:sandbox_{model._meta.model_name}_changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_it_offers_no_way_to_add_company_data(superuser, model) -> None:
    response = superuser.get(reverse(f"admin:sandbox_{model._meta.model_name}_add"))

    assert response.status_code == 403


@pytest.mark.parametrize(
    "make",
    [
        TenantConfigFactory,
        TenantUserFactory,
        LoginAttemptFactory,
        SubscriptionFactory,
        InvoiceFactory,
        LogEventFactory,
        CacheResetFactory,
    ],
)
def test_it_shows_every_kind_of_row(superuser, make) -> None:
    row = make()
    response = superuser.get(reverse(f"admin:sandbox_{row._meta.model_name}_change", args=[row.pk]))

    assert response.status_code == 200
    assert b"password_hash" not in response.content


def test_it_shows_a_tenant_read_only(superuser) -> None:
    TenantFactory(id="acme", name="Acme Analytics")
    url = reverse("admin:sandbox_tenant_change", args=["acme"])
    shown = superuser.get(url)
    posted = superuser.post(url, {"name": "Renamed"})

    assert shown.status_code == 200
    assert b"Acme Analytics" in shown.content
    assert posted.status_code == 403
    assert Tenant.objects.get(pk="acme").name == "Acme Analytics"


def test_it_edits_the_fault_switch(superuser) -> None:
    data = {"error_rate": "0.5", "error_status": "502", "latency_ms": "100", "changed_shape": "on"}
    response = superuser.post(reverse("admin:sandbox_faultswitch_add"), data)

    assert response.status_code == 302
    switch = FaultSwitch.objects.get()
    assert (switch.pk, switch.error_rate, switch.error_status, switch.changed_shape) == (1, 0.5, 502, True)
    assert superuser.get(reverse("admin:sandbox_faultswitch_add")).status_code == 403  # one row only


def test_it_refuses_nonsense_faults_in_the_admin(superuser) -> None:
    data = {"error_rate": "3", "error_status": "200", "latency_ms": "0"}
    response = superuser.post(reverse("admin:sandbox_faultswitch_add"), data)

    assert response.status_code == 200
    assert b"error_rate must be between 0 and 1" in response.content
    assert not FaultSwitch.objects.exists()


def test_it_keeps_the_admin_to_staff(client) -> None:
    response = client.get(reverse("admin:sandbox_faultswitch_changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
