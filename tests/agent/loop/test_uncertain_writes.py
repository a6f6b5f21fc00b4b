"""A write whose outcome is unknown is reconciled by its verifier before anything else, and the same write again
in the run never gets a second effect: it is answered from the first, or sent with the first one's
Idempotency-Key. The Admin API is a scripted HTTP stand-in, so the exact requests can be checked."""

from __future__ import annotations

import pytest

from agent.loop import Outcome
from agent.models import AgentRun, ProposedAction
from tests.bedrock import converse_reply, drive, tenant_body, tool_results, tool_use
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = "2026-12-10T12:00:00+00:00"
AFTER = "2026-12-17T12:00:00+00:00"
EXTENDED = {"tenant_id": "acme", "trial_ends_at": AFTER, "previous_trial_ends_at": BEFORE}
RESHAPED = {"data": EXTENDED, "meta": {"api_version": "2"}}  # the API's answers moved under "data"
TRIALING = tenant_body(status="trialing", plan="trial", trial_ends_at=BEFORE)


def _run() -> AgentRun:
    workflow = WorkflowFactory(
        phase="autonomous",
        preapproved_tools=["extend_trial"],
        tool_limits={"extend_trial": {"days": {"max": 14}}},
    )
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="One more week of trial please")
    return AgentRunFactory(ticket=ticket, workflow=workflow, phase="autonomous")


def _extend(call_id: str) -> dict:
    return converse_reply(tool_use(call_id, "extend_trial", {"tenant_id": "acme", "days": 7}))


def _writes(standin) -> list:
    return [r for r in standin.requests if r.method == "POST"]


def test_it_sends_a_retried_write_of_unknown_outcome_with_the_first_ones_key(bedrock, admin_standin) -> None:
    run = _run()
    # First call: the write happens, but its answer and every re-read come back in a changed shape.
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, RESHAPED)
    admin_standin.answer(200, {"data": TRIALING, "meta": {"api_version": "2"}})
    # The model tries again: the first call is re-read first (still unreadable), then sent again.
    admin_standin.answer(200, {"data": TRIALING, "meta": {"api_version": "2"}})
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, RESHAPED, {"Idempotent-Replayed": "true"})
    admin_standin.answer(200, {"data": TRIALING, "meta": {"api_version": "2"}})
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, _extend("b"))
    bedrock.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    first, second = _writes(admin_standin)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    actions = list(ProposedAction.objects.filter(run=run).order_by("id"))
    assert [a.status for a in actions] == ["uncertain", "uncertain"]
    assert actions[1].retry_of == actions[0]
    observed = tool_results(bedrock.requests[1])["a"]
    assert (observed["ok"], observed["error_type"], observed["uncertain"]) == (False, "outcome_unknown", True)
    run.refresh_from_db()
    assert run.status == "escalated"
    assert not run.ticket.comments.filter(public=True).exists()


def test_it_answers_a_repeat_from_the_first_write_once_state_shows_it_took_effect(bedrock, admin_standin) -> None:
    run = _run()
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, RESHAPED)
    admin_standin.answer(200, tenant_body(status="trialing", plan="trial", trial_ends_at=AFTER))  # it took effect
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, _extend("b"))
    bedrock.answer(200, converse_reply(tool_use("r", "reply_to_customer", {"body": "Your trial ends a week later."})))
    bedrock.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    assert len(_writes(admin_standin)) == 1
    [write, reply] = ProposedAction.objects.filter(run=run).order_by("id")
    assert (write.status, write.verification) == ("executed", "passed")
    first = tool_results(bedrock.requests[1])["a"]
    assert first["ok"] is True and "re-reading state shows it took effect" in first["message"]
    repeat = tool_results(bedrock.requests[2])["b"]
    assert repeat["ok"] is True and "already ran in this run" in repeat["message"]
    assert reply.status == "executed"
    run.refresh_from_db()
    assert run.status == "completed"
    assert run.ticket.comments.filter(public=True).count() == 1


def test_it_sends_again_with_the_same_key_once_state_shows_the_first_did_not_take_effect(
    bedrock, admin_standin
) -> None:
    run = _run()
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(503, {"error": {"code": "unavailable", "message": "down"}})
    admin_standin.answer(503, {"error": {"code": "unavailable", "message": "down"}})  # cannot tell yet
    admin_standin.answer(200, TRIALING)  # later: it did not take effect
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, EXTENDED)
    admin_standin.answer(200, tenant_body(status="trialing", plan="trial", trial_ends_at=AFTER))
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, _extend("b"))
    bedrock.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    first, second = _writes(admin_standin)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    [earlier, retry] = ProposedAction.objects.filter(run=run).order_by("id")
    assert earlier.status == "failed" and earlier.execution_result["uncertain"] is True
    assert (retry.status, retry.verification, retry.retry_of_id) == ("executed", "passed", earlier.pk)
    run.refresh_from_db()
    assert run.status == "completed"


def test_it_takes_a_retry_written_as_a_float_in_another_key_order_for_the_same_write(bedrock, admin_standin) -> None:
    """A model that writes 7 as 7.0 (and the arguments in another order) makes the same call, not a second one
    that the limits would still let through."""
    run = _run()
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, RESHAPED)
    admin_standin.answer(200, tenant_body(status="trialing", plan="trial", trial_ends_at=AFTER))  # it took effect
    # Anything sent again would be answered as a fresh extension.
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(200, EXTENDED)
    admin_standin.answer(200, tenant_body(status="trialing", plan="trial", trial_ends_at=AFTER))
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, converse_reply(tool_use("b", "extend_trial", {"days": 7.0, "tenant_id": "acme"})))
    bedrock.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    assert len(_writes(admin_standin)) == 1
    [write] = ProposedAction.objects.filter(run=run)
    assert (write.status, write.verification) == ("executed", "passed")
    repeat = tool_results(bedrock.requests[2])["b"]
    assert repeat["ok"] is True and "already ran in this run" in repeat["message"]


def test_it_escalates_a_run_the_model_ends_with_a_fixed_claim_after_a_write_that_failed(bedrock, admin_standin) -> None:
    """A write refused by the Admin API, then a turn of text alone saying it is done: the run is not "completed"
    on the model's word; the humans are told which write did not happen."""
    run = _run()
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(409, {"error": {"code": "not_trialing", "message": "The tenant is not trialing."}})
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, converse_reply({"text": "Done: the trial is extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    assert ProposedAction.objects.get(run=run).status == "failed"
    run.refresh_from_db()
    assert run.status == "escalated"
    assert "extend_trial (failed)" in run.status_reason
    assert not run.ticket.comments.filter(public=True).exists()


def test_it_reconciles_a_write_answered_with_a_redirect_instead_of_calling_it_failed(bedrock, admin_standin) -> None:
    """A 303 after a POST often means the server acted: the write is checked by its verifier (and the redirect is
    not followed, so the credentials go nowhere else)."""
    run = _run()
    admin_standin.answer(200, TRIALING)
    admin_standin.answer(303, raw=b"", headers={"Location": "http://elsewhere.invalid/tenants/acme"})
    admin_standin.answer(200, tenant_body(status="trialing", plan="trial", trial_ends_at=AFTER))  # it took effect
    bedrock.answer(200, _extend("a"))
    bedrock.answer(200, converse_reply({"text": "Extended by a week."}, stop="end_turn"))

    assert drive(run.pk) == Outcome.DONE

    assert len(_writes(admin_standin)) == 1 and len(admin_standin.requests) == 3
    write = ProposedAction.objects.get(run=run)
    assert (write.status, write.verification) == ("executed", "passed")
    observed = tool_results(bedrock.requests[1])["a"]
    assert observed["ok"] is True and "re-reading state shows it took effect" in observed["message"]
