from __future__ import annotations

import pytest

from sandbox.models import FaultSwitch, IdempotencyRecord, Tenant, TenantConfig
from tests.sandbox.conftest import BASE, auth_headers
from tests.sandbox.factories import TenantConfigFactory, TrialingTenantFactory

pytestmark = pytest.mark.django_db

WRITES = [
    ("post", "/tenants/globex/cache/reset"),
    ("post", "/tenants/globex/trial/extend"),
    ("post", "/tenants/globex/users/ops@globex.example/unlock"),
    ("put", "/tenants/globex/config/sso.enabled"),
    ("put", "/_faults"),
]
GARBAGE = [b"{not json", b"\xff\xfe", b"[1, 2]", b'"days"', b"42", b"null", b"{'days': 7}", b'{"days": 7']
WRONG_TYPES = [
    ("post", "/tenants/globex/trial/extend", b'{"days": "seven"}'),
    ("post", "/tenants/globex/trial/extend", b'{"days": [7]}'),
    ("put", "/tenants/globex/config/sso.enabled", b'{"value": [], "reason": "r"}'),
    ("put", "/tenants/globex/config/sso.enabled", b'{"value": "true", "reason": {"why": 1}}'),
    ("put", "/_faults", b'{"error_rate": "lots"}'),
    ("put", "/_faults", b'{"swallow_writes": "maybe"}'),
    ("put", "/_faults", b'{"latency_ms": 1.5}'),
]


@pytest.fixture
def globex() -> Tenant:
    tenant = TrialingTenantFactory(id="globex")
    TenantConfigFactory(tenant=tenant, key="sso.enabled", value="false")
    return tenant


def _assert_error_shape(response: object) -> None:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"].replace("_", "").isalpha()
    assert body["error"]["code"] == body["error"]["code"].lower()
    assert body["error"]["message"]


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("raw", GARBAGE)
def test_it_answers_garbage_with_a_json_client_error_and_changes_nothing(client, globex, method, path, raw) -> None:
    response = getattr(client, method)(
        f"{BASE}{path}", data=raw, content_type="application/json", headers=auth_headers(**{"Idempotency-Key": "g"})
    )

    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    _assert_error_shape(response)
    tenant = Tenant.objects.get(pk="globex")
    assert (tenant.cache_version, tenant.trial_ends_at) == (globex.cache_version, globex.trial_ends_at)
    assert TenantConfig.objects.get(key="sso.enabled").value == "false"


@pytest.mark.parametrize(("method", "path", "raw"), WRONG_TYPES)
def test_it_answers_wrong_types_with_a_json_422_and_changes_nothing(client, globex, method, path, raw) -> None:
    response = getattr(client, method)(
        f"{BASE}{path}", data=raw, content_type="application/json", headers=auth_headers()
    )

    assert response.status_code == 422
    _assert_error_shape(response)
    assert response.json()["error"]["code"] == "invalid_request"
    assert Tenant.objects.get(pk="globex").trial_ends_at == globex.trial_ends_at
    assert TenantConfig.objects.get(key="sso.enabled").value == "false"
    assert not FaultSwitch.objects.exists()


def test_it_answers_invalid_json_with_400(admin_api, globex) -> None:
    response = admin_api.post("/tenants/globex/trial/extend", "{not json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_it_answers_a_body_that_is_not_an_object_with_400(admin_api, globex) -> None:
    response = admin_api.post("/tenants/globex/trial/extend", "[7]")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_json", "message": "The request body must be a JSON object."}


@pytest.mark.parametrize("body", [{}, {"days": "7"}, {"days": 7.5}, {"days": True}, {"days": None}])
def test_it_answers_a_wrong_or_missing_field_with_422(admin_api, globex, body: dict) -> None:
    response = admin_api.post("/tenants/globex/trial/extend", body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"].startswith("The request is invalid: days: ")
    assert Tenant.objects.get(pk="globex").trial_ends_at == globex.trial_ends_at


def test_it_does_not_claim_a_key_for_invalid_json(admin_api, globex) -> None:
    admin_api.post("/tenants/globex/trial/extend", "{not json", key="k-1")
    retried = admin_api.post("/tenants/globex/trial/extend", {"days": 3}, key="k-1")

    assert retried.status_code == 200
    assert IdempotencyRecord.objects.get(key="k-1").status_code == 200


def test_it_answers_an_unknown_path_with_json_404(admin_api) -> None:
    response = admin_api.get("/tenants/acme/nothing/here")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_answers_a_wrong_method_with_json_405(admin_api, globex) -> None:
    response = admin_api.client.delete(f"{BASE}/tenants/globex", headers=auth_headers())

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "GET"
    assert Tenant.objects.filter(pk="globex").exists()


def test_it_answers_a_get_on_a_write_endpoint_with_json_405(admin_api, globex) -> None:
    response = admin_api.get("/tenants/globex/cache/reset")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    _assert_error_shape(response)


def test_it_takes_an_empty_form_for_an_empty_body(client, globex) -> None:
    response = client.post(f"{BASE}/tenants/globex/cache/reset", headers=auth_headers())

    assert response.status_code == 200
    assert Tenant.objects.get(pk="globex").cache_version == globex.cache_version + 1


def test_it_refuses_a_form_with_fields(client, globex) -> None:
    response = client.post(f"{BASE}/tenants/globex/trial/extend", {"days": "7"}, headers=auth_headers())

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert Tenant.objects.get(pk="globex").trial_ends_at == globex.trial_ends_at
