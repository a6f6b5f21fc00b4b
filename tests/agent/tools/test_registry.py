from __future__ import annotations

import json

import pytest

from agent.catalogue import all_tools, get_tool
from agent.policy import Risk
from agent.tools.base import ErrorType, ToolContext

EXPECTED = {
    "reset_tenant_cache": Risk.WRITE,
    "extend_trial": Risk.WRITE,
    "unlock_user": Risk.WRITE,
    "apply_config_patch": Risk.WRITE,
    "get_billing_status": Risk.READ,
    "search_logs": Risk.READ,
    "search_runbooks": Risk.READ,
    "add_private_note": Risk.HELPDESK,
    "route_ticket": Risk.HELPDESK,
    "reply_to_customer": Risk.HELPDESK,
    "solve_ticket": Risk.HELPDESK,
}
# The company's tools come from its contracts, stored in the database (the sandbox's, installed for every test).
pytestmark = pytest.mark.django_db

TENANT_BOUND = {"reset_tenant_cache", "extend_trial", "unlock_user", "apply_config_patch", "get_billing_status"}


def test_it_registers_every_tool_with_its_risk() -> None:
    tools = all_tools()

    assert EXPECTED.keys() <= tools.keys()
    assert {name: tools[name].risk for name in EXPECTED} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_describes_each_tool_with_a_strict_json_schema(name: str) -> None:
    spec = all_tools()[name].spec()

    assert spec["name"] == name
    assert len(spec["description"]) >= 40
    schema = spec["input_schema"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert json.loads(json.dumps(spec)) == spec


def test_it_gives_a_verifier_to_exactly_the_writes() -> None:
    tools = all_tools()

    with_verifier = {name for name in EXPECTED if tools[name].has_verifier}

    assert with_verifier == {name for name, risk in EXPECTED.items() if risk == Risk.WRITE}


@pytest.mark.parametrize("name", sorted(TENANT_BOUND))
def test_it_requires_a_tenant_id_on_company_tools(name: str) -> None:
    schema = all_tools()[name].spec()["input_schema"]

    assert "tenant_id" in schema["required"]


@pytest.mark.parametrize("name", sorted(TENANT_BOUND))
def test_it_refuses_another_tenant_before_any_call(name: str) -> None:
    tool = get_tool(name)
    assert tool is not None
    args = {"tenant_id": "globex", "days": 5, "email": "a@example.com", "patch_id": "p"}
    fields = tool.spec()["input_schema"]["properties"]

    observation = tool.invoke({k: v for k, v in args.items() if k in fields}, ToolContext(1, "acme"))

    assert observation.error_type == ErrorType.TENANT_MISMATCH


def test_it_keeps_the_logs_stream_out_of_the_models_hands() -> None:
    schema = all_tools()["search_logs"].spec()["input_schema"]

    assert set(schema["properties"]) == {"query", "minutes", "limit"}
