"""Contract validation: a contract file is checked against the catalogue at import, every problem named."""

from __future__ import annotations

import pytest

from agent.company.cel import ConditionError, condition_check, holds
from agent.company.contracts import ContractError, contracts_compile
from agent.company.openapi import catalogue_load
from tests.companies.northwind import CONTRACTS, OPENAPI, PICKED

GOOD = CONTRACTS.read_text()


def compile_northwind(text: str, picked: tuple[str, ...] = PICKED, builtin: frozenset[str] = frozenset()) -> dict:
    catalogue = catalogue_load(str(OPENAPI))
    return contracts_compile(text, catalogue=catalogue.operations, picked=set(picked), builtin=set(builtin))


def refusal(text: str, **options: object) -> str:
    with pytest.raises(ContractError) as caught:
        compile_northwind(text, **options)
    return caught.value.message


def test_it_compiles_the_model_facing_schema_from_the_operation_and_the_contract() -> None:
    compiled = compile_northwind(GOOD)

    schema = compiled["raise_seat_cap"]["args_schema"]
    # The tenant is one argument named tenant_id whatever the API calls it; `set` fields are hidden.
    assert list(schema["properties"]) == ["tenant_id", "extra_seats"]
    assert schema["required"] == ["tenant_id", "extra_seats"]
    assert (schema["properties"]["extra_seats"]["minimum"], schema["properties"]["extra_seats"]["maximum"]) == (1, 50)
    assert compiled["raise_seat_cap"]["reads"]["verification"]["operation"]["operation_id"] == "getAccount"
    assert compiled["get_usage"]["args_schema"]["properties"]["days"]["maximum"] == 90


def test_it_refuses_an_unknown_operation_with_close_names() -> None:
    message = refusal(GOOD.replace("operation: raiseSeatCap", "operation: raiseSeatcap"))

    assert "tools.raise_seat_cap.operation: there is no operation 'raiseSeatcap'" in message
    assert "did you mean raiseSeatCap" in message


def test_it_refuses_a_condition_that_does_not_compile() -> None:
    message = refusal(GOOD.replace("after.seat_cap == before.seat_cap", "after.seat_cap === before.seat_cap"))

    assert "tools.raise_seat_cap.verification.condition: The condition" in message
    assert "does not compile" in message


def test_it_refuses_a_condition_naming_something_it_cannot_see() -> None:
    message = refusal(GOOD.replace("after.seat_cap == before.seat_cap", "afterwards.seat_cap == before.seat_cap"))

    assert "uses 'afterwards'" in message
    assert "after, args, before, replayed, result, started_at, ticket_id" in message


def test_it_refuses_a_write_without_verification() -> None:
    text = GOOD.split("    verification:")[0] + "\n  get_usage:\n" + GOOD.split("  get_usage:\n")[1]

    assert "tools.raise_seat_cap: a write needs a `verification`" in refusal(text)


def test_it_refuses_a_tenant_field_that_does_not_exist() -> None:
    message = refusal(GOOD.replace("tenant: {in: path, name: account_ref}", "tenant: {in: body, name: account}", 1))

    assert "tools.raise_seat_cap.tenant: the operation 'raiseSeatCap' has no body field 'account'" in message
    assert "its body fields are: extra_seats, ticket_ref" in message


def test_it_lists_every_problem_at_once_and_refuses_unknown_keys() -> None:
    message = refusal(
        GOOD.replace("operation: getUsage", "operation: nothing").replace("risk: write", "risk: write\n    retries: 3")
    )

    assert "tools.raise_seat_cap.retries: Extra inputs are not permitted" in message


def test_it_refuses_an_operation_that_is_not_picked_or_cannot_be_a_tool() -> None:
    assert "is in the catalogue but not picked" in refusal(GOOD, picked=("getUsage",))
    text = GOOD.replace("operation: getUsage", "operation: uploadLogo")
    assert "cannot be a tool: its request body is multipart/form-data" in refusal(text)


def test_it_refuses_a_name_a_built_in_tool_has_and_bad_yaml() -> None:
    assert "a built-in tool already has this name" in refusal(GOOD, builtin=frozenset({"get_usage"}))
    assert "not valid YAML" in refusal("tools: [unclosed")
    assert "must be a mapping" in refusal("- a list")
    assert "tools: Field required" in refusal("version: 1")


def test_it_refuses_limits_and_overlays_on_arguments_the_tool_does_not_have() -> None:
    text = GOOD.replace("extra_seats: {min_per_call", "seats: {min_per_call")

    assert "tools.raise_seat_cap.limits: the tool has no argument 'seats'" in refusal(text)


def test_it_evaluates_conditions_in_cel_never_in_python() -> None:
    assert holds("after.v > before.v", {"after": {"v": 2}, "before": {"v": 1}}) is True
    with pytest.raises(ConditionError, match="could not be evaluated"):
        holds("after.missing > 1", {"after": {}})
    with pytest.raises(ConditionError, match="not true or false"):
        holds("after.v", {"after": {"v": 3}})
    # Python is not an expression language the contract can reach.
    with pytest.raises(ConditionError):
        condition_check("__import__('os').system('true')", names={"after"})
