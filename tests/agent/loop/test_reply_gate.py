"""Nothing reaches the customer while a write of the run is unproven, and a failed write sends what the customer
hears to a reviewer: through the real loop and gate, with the model on the Bedrock path (HTTP Converse stand-in)
and the Admin API answering the way a failing API does."""

from __future__ import annotations

import pytest

from agent.loop import Outcome
from agent.models import AgentRun, ProposedAction
from audit.models import AuditEvent
from sandbox.models import FaultSwitch, Tenant
from tests.bedrock import converse_reply, drive, tenant_body, tool_results, tool_use
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)

FIXED = "Hello, we reset your cache; it is fresh now."
CHANGED_SHAPE = {"data": {"tenant_id": "acme", "cache_version": 6}, "meta": {"api_version": "2"}}


def _autonomous_run(**workflow: object) -> AgentRun:
    workflow = {"preapproved_tools": ["reset_tenant_cache"], **workflow}
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="Dashboard shows stale data", tags=["stale_cache"])
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="autonomous", **workflow), phase="autonomous")


def _model_resets_then_says_fixed(bedrock) -> None:
    bedrock.answer(
        200, converse_reply({"text": "Reset it."}, tool_use("t1", "reset_tenant_cache", {"tenant_id": "acme"}))
    )
    bedrock.answer(
        200, converse_reply(tool_use("t2", "reply_to_customer", {"body": FIXED}), tool_use("t3", "solve_ticket", {}))
    )
    bedrock.answer(200, converse_reply({"text": "The cache is fresh now."}, stop="end_turn"))


def _nothing_told(run: AgentRun) -> None:
    assert not run.ticket.comments.filter(public=True).exists()
    run.ticket.refresh_from_db()
    assert run.ticket.status != "solved"


def test_it_sends_the_reply_to_a_reviewer_after_a_503_that_reconciliation_shows_took_no_effect(
    bedrock, admin_standin
) -> None:
    run = _autonomous_run()
    admin_standin.answer(200, tenant_body())  # the baseline read
    admin_standin.answer(503, {"error": {"code": "unavailable", "message": "try later"}})  # the reset
    admin_standin.answer(200, tenant_body())  # re-read: nothing changed
    _model_resets_then_says_fixed(bedrock)

    assert drive(run.pk) == Outcome.PAUSED

    _nothing_told(run)
    reset = ProposedAction.objects.get(run=run, tool="reset_tenant_cache")
    assert reset.status == "failed"
    proposals = dict(ProposedAction.objects.filter(run=run).values_list("tool", "status"))
    assert (proposals["reply_to_customer"], proposals["solve_ticket"]) == ("pending", "pending")
    observed = tool_results(bedrock.requests[1])["t1"]
    assert observed["ok"] is False and "did not take effect" in observed["message"]
    run.refresh_from_db()
    assert run.status == "awaiting_approval"


@pytest.mark.parametrize(
    "write_answer",
    [
        pytest.param({"status": 200, "body": tenant_body(cache_version=6), "delay": 1.5}, id="timeout"),
        pytest.param({"status": 200, "body": CHANGED_SHAPE}, id="changed-shape"),
        pytest.param({"status": 502, "body": {"error": {"code": "bad_gateway", "message": "upstream"}}}, id="502"),
    ],
)
def test_it_refuses_a_fixed_reply_while_the_write_is_of_unknown_outcome_and_escalates(
    bedrock, admin_standin, write_answer, settings
) -> None:
    run = _autonomous_run()
    admin_standin.answer(200, tenant_body())
    admin_standin.answer(write_answer["status"], write_answer["body"], delay=write_answer.get("delay", 0.0))
    admin_standin.answer(503, {"error": {"code": "unavailable", "message": "down"}})  # the re-read fails too
    _model_resets_then_says_fixed(bedrock)

    assert drive(run.pk) == Outcome.DONE

    _nothing_told(run)
    reset = ProposedAction.objects.get(run=run, tool="reset_tenant_cache")
    assert reset.status == "uncertain"
    assert not ProposedAction.objects.filter(run=run, tool__in=["reply_to_customer", "solve_ticket"]).exists()
    refusals = [e.payload for e in AuditEvent.objects.filter(verb="gate.refused", object_id=str(run.pk)).order_by("id")]
    assert [r["tool"] for r in refusals] == ["reply_to_customer", "solve_ticket"]
    assert "reset_tenant_cache (outcome unknown)" in refusals[0]["reason"]
    seen = tool_results(bedrock.requests[2])
    assert seen["t2"]["error_type"] == "refused" and seen["t3"]["error_type"] == "refused"
    run.refresh_from_db()
    assert run.status == "escalated"
    assert "outcome of reset_tenant_cache is unknown" in run.status_reason
    note = run.ticket.comments.get(public=False)
    assert "outcome of reset_tenant_cache is unknown" in note.body
    run.ticket.refresh_from_db()
    assert run.ticket.group_id == settings.HELPDESK_PODS["humans"]


def test_it_sends_the_reply_to_a_reviewer_when_the_admin_api_is_down(bedrock_company) -> None:
    run = _autonomous_run()
    FaultSwitch.objects.filter(pk=1).update(error_rate=1.0, error_status=503)
    version = Tenant.objects.get(pk="acme").cache_version
    _model_resets_then_says_fixed(bedrock_company)

    assert drive(run.pk) == Outcome.PAUSED

    _nothing_told(run)
    assert ProposedAction.objects.get(run=run, tool="reply_to_customer").status == "pending"
    FaultSwitch.objects.filter(pk=1).update(error_rate=0.0)
    assert Tenant.objects.get(pk="acme").cache_version == version


@pytest.mark.parametrize("order", ["write-first", "reply-first"])
def test_it_holds_a_reply_made_in_the_same_turn_as_a_write_that_waits_for_a_reviewer(bedrock_company, order) -> None:
    run = _autonomous_run(preapproved_tools=["extend_trial"], tool_limits={"extend_trial": {"days": {"max": 14}}})
    run.ticket.tenant_link.tenant_id = "globex"
    run.ticket.tenant_link.save()
    trial_end = Tenant.objects.get(pk="globex").trial_ends_at
    write = tool_use("w", "extend_trial", {"tenant_id": "globex", "days": 30})  # over the limit: a reviewer decides
    reply = tool_use("r", "reply_to_customer", {"body": "Your trial is extended by 30 days."})
    calls = (write, reply) if order == "write-first" else (reply, write)
    bedrock_company.answer(200, converse_reply(*calls))

    assert drive(run.pk) == Outcome.PAUSED

    _nothing_told(run)
    assert ProposedAction.objects.get(run=run, tool="extend_trial").status == "pending"
    assert not ProposedAction.objects.filter(run=run, tool="reply_to_customer").exists()
    [refusal] = AuditEvent.objects.filter(verb="gate.refused", object_id=str(run.pk))
    assert refusal.payload["tool"] == "reply_to_customer"
    assert "extend_trial" in refusal.payload["reason"]
    assert Tenant.objects.get(pk="globex").trial_ends_at == trial_end
