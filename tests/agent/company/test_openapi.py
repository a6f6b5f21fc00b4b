"""Reading a company's OpenAPI document: references resolved by prance, operations as tools see them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.company.openapi import OpenApiError, catalogue_diff, catalogue_load, catalogue_parse
from tests.companies.northwind import OPENAPI

SANDBOX_OPENAPI = Path(__file__).resolve().parents[3] / "sandbox" / "openapi.json"


def test_it_reads_a_real_world_document_with_refs_allof_and_path_level_parameters() -> None:
    catalogue = catalogue_load(str(OPENAPI))

    assert (catalogue.title, catalogue.version) == ("Northwind Seats Admin API", "2.4")
    raise_cap = catalogue.operations["raiseSeatCap"]
    assert (raise_cap.method, raise_cap.path) == ("POST", "/accounts/{account_ref}/seat-cap:raise")
    # The path-level $ref parameter, the allOf body parts side by side, the header left to the contract.
    assert raise_cap.locations == {
        "account_ref": "path",
        "Idempotency-Token": "header",
        "extra_seats": "body",
        "ticket_ref": "body",
    }
    assert raise_cap.args_schema["required"] == ["account_ref", "extra_seats", "ticket_ref"]
    assert raise_cap.args_schema["additionalProperties"] is False
    assert raise_cap.response_schema["required"] == ["account_ref", "seat_cap", "previous_seat_cap"]
    # OpenAPI 3.0's nullable became JSON Schema.
    account = catalogue.operations["getAccount"].response_schema
    assert account["properties"]["changed_at"]["type"] == ["string", "null"]
    usage = catalogue.operations["getUsage"]
    assert usage.locations["days"] == "query" and "days" not in usage.args_schema["required"]


def test_it_names_an_operation_without_an_id_and_refuses_a_body_that_is_not_json() -> None:
    catalogue = catalogue_load(str(OPENAPI))

    status = catalogue.operations["get_status"]
    assert status.generated_id is True and (status.method, status.path) == ("GET", "/status")
    assert "multipart/form-data" in catalogue.operations["uploadLogo"].unsupported
    assert "only application/json" in catalogue.operations["uploadLogo"].unsupported


BROKEN_REF = {"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/missing"}}}}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openapi: [unclosed", "neither JSON nor YAML"),
        ('{"swagger": "2.0", "info": {}, "paths": {}}', "not OpenAPI 3"),
        ("just a string", "not OpenAPI 3"),
        (
            json.dumps(
                {
                    "openapi": "3.0.3",
                    "info": {"title": "x", "version": "1"},
                    "paths": {"/a": {"get": {"responses": {"200": {"$ref": "#/components/responses/missing"}}}}},
                }
            ),
            "is not valid",
        ),
        (json.dumps({"openapi": "3.0.3", "paths": {}}), "is not valid"),
    ],
)
def test_it_refuses_a_bad_document_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(OpenApiError) as caught:
        catalogue_parse(text, "upload.yaml")

    assert message in caught.value.message
    assert "upload.yaml" in caught.value.message


def test_it_refuses_a_missing_file_and_an_unreachable_url() -> None:
    with pytest.raises(OpenApiError, match=r"No OpenAPI document at /nope\.yaml"):
        catalogue_load("/nope.yaml")
    with pytest.raises(OpenApiError, match=r"No OpenAPI document at http://127\.0\.0\.1:9/"):
        catalogue_load("http://127.0.0.1:9/openapi.json")


def test_it_shows_what_changed_between_two_imports() -> None:
    old = catalogue_load(str(OPENAPI)).operations
    document = json.loads(SANDBOX_OPENAPI.read_text())
    document["paths"]["/tenants/{tenant_id}/trial/extend"]["post"]["parameters"].append(
        {"in": "query", "name": "notify", "schema": {"type": "boolean"}}
    )
    del document["paths"]["/tenants/{tenant_id}/billing"]
    changed = catalogue_parse(json.dumps(document)).operations
    original = catalogue_load(str(SANDBOX_OPENAPI)).operations

    diff = catalogue_diff({k: op.fingerprint for k, op in original.items()}, changed)

    assert diff.added == []
    assert diff.removed == ["sandbox_admin_api_tenant_billing_read"]
    assert diff.changed == ["sandbox_admin_api_tenant_trial_extend"]
    assert catalogue_diff({k: op.fingerprint for k, op in old.items()}, old).empty


def test_it_reads_a_recursive_schema_instead_of_refusing_the_document() -> None:
    node = {"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array",
            "items": {"$ref": "#/components/schemas/Node"}}}}  # fmt: skip
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Trees", "version": "1"},
        "components": {"schemas": {"Node": node}},
        "paths": {"/trees/{tree_id}": {"get": {"operationId": "getTree", "parameters": [
            {"name": "tree_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "A tree", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Node"}}}}}}}},
    }  # fmt: skip

    tree = catalogue_parse(json.dumps(document)).operations["getTree"]

    assert tree.response_schema["properties"]["name"] == {"type": "string"}
    assert tree.locations == {"tree_id": "path"}
