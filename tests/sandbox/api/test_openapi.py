from __future__ import annotations

import pytest

from tests.sandbox.conftest import BASE

pytestmark = pytest.mark.django_db

PATHS = {
    "/tenants/{tenant_id}": {"get"},
    "/tenants/{tenant_id}/cache/reset": {"post"},
    "/tenants/{tenant_id}/trial/extend": {"post"},
    "/tenants/{tenant_id}/users/{email}": {"get"},
    "/tenants/{tenant_id}/users/{email}/unlock": {"post"},
    "/tenants/{tenant_id}/config": {"get"},
    "/tenants/{tenant_id}/config/{key}": {"put"},
    "/tenants/{tenant_id}/billing": {"get"},
    "/_faults": {"get", "put"},
}


def test_it_serves_its_own_openapi_document_listing_every_path(client) -> None:
    response = client.get(f"{BASE}/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Sandbox Admin API"
    assert {path.removeprefix(BASE): set(ops) for path, ops in document["paths"].items()} == PATHS
    assert {scheme["scheme"] for scheme in document["components"]["securitySchemes"].values()} == {"bearer"}


def test_it_documents_the_error_shape(client) -> None:
    document = client.get(f"{BASE}/openapi.json").json()
    responses = document["paths"]["/tenants/{tenant_id}/cache/reset"]["post"]["responses"]  # relative to servers
    assert document["servers"] == [{"url": BASE}]

    assert {"200", "404", "429"} <= set(responses)
    assert set(document["components"]["schemas"]["ErrorOut"]["properties"]) == {"error"}


def test_it_serves_the_docs_page(client) -> None:
    response = client.get(f"{BASE}/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content


def test_it_stays_out_of_the_console_api_document(client) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]

    assert not [path for path in paths if "sandbox" in path or "tenants" in path]


def test_it_documents_the_idempotency_key_on_every_write(client) -> None:
    document = client.get(f"{BASE}/openapi.json").json()
    writes = [
        (path, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in {"post", "put"}
    ]

    assert len(writes) == 5
    for path, operation in writes:
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert headers == ["Idempotency-Key"], path
