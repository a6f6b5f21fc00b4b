from __future__ import annotations

import pytest

from sandbox.models import LogEvent, TenantConfig
from tests.sandbox.factories import TenantConfigFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stark() -> object:
    tenant = TenantFactory(id="stark")
    TenantConfigFactory(tenant=tenant, key="terraform.state_lock_timeout", value="0")
    TenantConfigFactory(tenant=tenant, key="sso.enabled", value="true")
    TenantConfigFactory(tenant=TenantFactory(id="acme"), key="sso.enabled", value="false")
    return tenant


def test_it_reads_the_configuration(admin_api, stark) -> None:
    response = admin_api.get("/tenants/stark/config")

    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": "stark",
        "values": {"sso.enabled": "true", "terraform.state_lock_timeout": "0"},
    }


def test_it_reads_an_empty_configuration(admin_api) -> None:
    TenantFactory(id="hooli")

    assert admin_api.get("/tenants/hooli/config").json() == {"tenant_id": "hooli", "values": {}}


def test_it_changes_an_existing_key(admin_api, stark) -> None:
    response = admin_api.put(
        "/tenants/stark/config/terraform.state_lock_timeout", {"value": "300", "reason": "Known patch KB-12"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": "stark",
        "key": "terraform.state_lock_timeout",
        "value": "300",
        "previous_value": "0",
    }
    assert TenantConfig.objects.get(tenant_id="stark", key="terraform.state_lock_timeout").value == "300"
    assert TenantConfig.objects.get(tenant_id="acme", key="sso.enabled").value == "false"
    line = LogEvent.objects.get(tenant_id="stark").message
    assert 'key=terraform.state_lock_timeout previous=0 value=300 reason="Known patch KB-12"' in line


def test_it_refuses_an_unknown_key_and_creates_nothing(admin_api, stark) -> None:
    response = admin_api.put("/tenants/stark/config/feature.new", {"value": "on", "reason": "asked"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "config_key_not_found"
    assert not TenantConfig.objects.filter(key="feature.new").exists()


def test_it_refuses_a_key_of_another_tenant(admin_api, stark) -> None:
    TenantFactory(id="hooli")
    response = admin_api.put("/tenants/hooli/config/sso.enabled", {"value": "true", "reason": "asked"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "config_key_not_found"


def test_it_answers_tenant_not_found_on_a_config_change(admin_api) -> None:
    response = admin_api.put("/tenants/nope/config/sso.enabled", {"value": "true", "reason": "asked"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_it_requires_a_reason(admin_api, stark) -> None:
    response = admin_api.put("/tenants/stark/config/sso.enabled", {"value": "false", "reason": "   "})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "reason_required"
    assert TenantConfig.objects.get(tenant_id="stark", key="sso.enabled").value == "true"


@pytest.mark.parametrize(
    "body",
    [
        {"value": "false"},
        {"reason": "asked"},
        {"value": 0, "reason": "asked"},
        {"value": "false", "reason": None},
        {"value": "x" * 501, "reason": "asked"},
    ],
)
def test_it_refuses_a_malformed_config_body(admin_api, stark, body: dict) -> None:
    response = admin_api.put("/tenants/stark/config/sso.enabled", body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert TenantConfig.objects.get(tenant_id="stark", key="sso.enabled").value == "true"
