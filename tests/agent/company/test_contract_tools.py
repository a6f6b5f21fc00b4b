"""Contract tools on a company other than the sandbox: Northwind Seats, connected by configuration only."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

from django.utils import timezone

from agent.catalogue import all_tools, get_tool
from agent.tools.base import ErrorType, Reconciled, Risk, ToolContext
from tests.companies.northwind import API_KEY


def ctx(tenant_id: str = "nw-1042") -> ToolContext:
    return ToolContext(ticket_id=7, tenant_id=tenant_id, run_id=1, idempotency_key=f"action-{uuid.uuid4()}")


def test_it_offers_the_companys_tools_with_their_declared_policy(northwind) -> None:
    tools = all_tools()

    assert {"raise_seat_cap", "get_usage"} <= set(tools)
    assert not {"reset_tenant_cache", "extend_trial"} & set(tools)  # the sandbox's contracts are not in force
    raise_cap = tools["raise_seat_cap"]
    assert (raise_cap.risk, raise_cap.idempotent_sends, raise_cap.has_verifier) == (Risk.WRITE, True, True)
    assert raise_cap.spec()["input_schema"]["required"] == ["tenant_id", "extra_seats"]
    assert tools["get_usage"].risk == Risk.READ and not tools["get_usage"].has_verifier


def test_it_writes_with_the_api_key_and_proves_the_effect_by_the_declared_read(northwind) -> None:
    tool = get_tool("raise_seat_cap")
    context = ctx()
    started = timezone.now()

    result = tool.invoke({"tenant_id": "nw-1042", "extra_seats": 5}, context)
    verification = tool.invoke_verify({"tenant_id": "nw-1042", "extra_seats": 5}, context, result, started)

    assert result.ok, result.message
    assert result.data == {"account_ref": "nw-1042", "seat_cap": 25, "previous_seat_cap": 20}
    assert verification.ok, verification.message
    assert northwind.accounts["nw-1042"].seat_cap == 25
    read, write, reread = northwind.requests
    assert (read.method, read.path) == ("GET", "/api/v2/accounts/nw-1042")
    assert (write.method, write.path) == ("POST", "/api/v2/accounts/nw-1042/seat-cap:raise")
    assert write.body == {"account_ref": None, "extra_seats": 5, "ticket_ref": "agent-console ticket 7"} or (
        write.body == {"extra_seats": 5, "ticket_ref": "agent-console ticket 7"}
    )
    assert write.headers["idempotency-token"] == context.idempotency_key
    assert "idempotency-key" not in write.headers
    assert all(r.headers["x-northwind-key"] == API_KEY for r in northwind.requests)
    assert (reread.method, reread.path) == ("GET", "/api/v2/accounts/nw-1042")


def test_it_catches_a_write_that_answers_200_and_changes_nothing(northwind) -> None:
    northwind.swallow = True
    tool = get_tool("raise_seat_cap")
    context = ctx()

    result = tool.invoke({"tenant_id": "nw-1042", "extra_seats": 5}, context)
    verification = tool.invoke_verify({"tenant_id": "nw-1042", "extra_seats": 5}, context, result, timezone.now())

    assert result.ok is True  # the API claimed success
    assert verification.error_type == ErrorType.VERIFICATION_FAILED
    assert verification.message == "Verification failed: expected seat_cap 25; read 20"


def test_it_binds_the_tenant_in_code_whatever_the_api_calls_it(northwind) -> None:
    tool = get_tool("raise_seat_cap")

    refused = tool.invoke({"tenant_id": "nw-9999", "extra_seats": 5}, ctx())
    invalid = tool.invoke({"tenant_id": "nw-1042", "extra_seats": 51}, ctx())
    smuggled = tool.invoke({"tenant_id": "nw-1042", "extra_seats": 5, "account_ref": "nw-9999"}, ctx())

    assert refused.error_type == ErrorType.TENANT_MISMATCH
    assert invalid.error_type == ErrorType.INVALID_ARGUMENTS and invalid.meta["errors"][0]["field"] == "extra_seats"
    assert smuggled.error_type == ErrorType.INVALID_ARGUMENTS
    assert northwind.requests == []


def test_it_reads_with_query_parameters_and_checks_the_answers_shape(northwind) -> None:
    result = get_tool("get_usage").invoke({"tenant_id": "nw-1042", "days": 30}, ctx())

    assert result.ok, result.message
    assert result.data["logins"] == 1200
    assert northwind.requests[0].path == "/api/v2/accounts/nw-1042/usage?days=30"


def test_it_reconciles_an_uncertain_write_by_its_verification(northwind) -> None:
    from agent.tools.base import Observation

    tool = get_tool("raise_seat_cap")
    args = {"tenant_id": "nw-1042", "extra_seats": 3}
    before = {"seat_cap": 20}
    lost = Observation.failure(ErrorType.TIMEOUT, "no answer", uncertain=True, before=before)

    state, _ = tool.invoke_reconcile(args, ctx(), lost, timezone.now() - timedelta(seconds=5))
    assert state == Reconciled.NOT_APPLIED
    northwind.accounts["nw-1042"].seat_cap = 23  # it did land after all
    state, check = tool.invoke_reconcile(args, ctx(), lost, timezone.now() - timedelta(seconds=5))
    assert (state, check.ok) == (Reconciled.APPLIED, True)


def test_it_shows_a_reviewer_the_current_state_from_the_contracts_read(northwind) -> None:
    current = get_tool("raise_seat_cap").invoke_read_current({"tenant_id": "nw-1042", "extra_seats": 5}, ctx())

    assert current.ok, current.message
    assert current.data == {"fields": [{"field": "seat_cap", "current": 20, "after": 25}]}


def test_it_drops_a_contract_retired_elsewhere_at_the_next_request_or_task(northwind, client) -> None:
    from celery import signals

    from agent.models import ToolContract

    assert get_tool("get_usage") is not None
    # Another process retires the contract: nothing in this one is told.
    ToolContract.objects.filter(name="get_usage", active=True).update(active=False)
    assert get_tool("get_usage") is not None  # the unit of work under way keeps what it started with

    client.get("/healthz")  # any request starts a new unit of work
    assert get_tool("get_usage") is None and "get_usage" not in all_tools()

    ToolContract.objects.filter(name="get_usage").update(active=True)
    eager = SimpleNamespace(name="t", request=SimpleNamespace(is_eager=True))  # keeps this test's connection
    signals.task_prerun.send(sender=None, task_id="t", task=eager, args=(), kwargs={})
    signals.task_postrun.send(sender=None, task_id="t", task=eager, args=(), kwargs={})
    assert get_tool("get_usage") is not None
