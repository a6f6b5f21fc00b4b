"""A replay under the Bedrock engine: the real langchain-aws client talks to the Converse stand-in. What the model
is handed for each call comes from the original run's recording, never from a new read or a write."""

from __future__ import annotations

import pytest

from agent.loop import Outcome
from agent.replay import replay_execute, replay_start
from sandbox.models import Tenant
from tests.bedrock import converse_reply, drive, tool_results, tool_use
from tests.factories import AgentRunFactory, TicketFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "SELECT tenant_id, status, trial_ends_at FROM support_tenant_overview"


def test_it_answers_the_model_from_the_recording_and_sends_no_write(bedrock_company) -> None:
    standin = bedrock_company
    workflow = WorkflowFactory(phase="triage")
    ticket = TicketFactory(tenant_link__tenant_id="globex", subject="More trial time")
    run = AgentRunFactory(ticket=ticket, workflow=workflow, phase="triage", trigger="ticket_created")
    standin.answer(200, converse_reply(tool_use("t1", "run_sql", {"query": QUERY})))
    standin.answer(200, converse_reply({"text": "The trial still runs; nothing to change."}, stop="end_turn"))
    assert drive(run.pk) == Outcome.DONE
    run.refresh_from_db()
    recorded = run.steps.get(kind="observation", tool_name="run_sql").tool_output
    assert run.status == "completed" and run.version.engine.startswith("bedrock:")
    trial_end = Tenant.objects.get(pk="globex").trial_ends_at

    admin, items = UserFactory(groups=["admins"]), []
    for _ in range(2):
        standin.requests.clear()
        standin.answer(200, converse_reply(tool_use("r1", "run_sql", {"query": QUERY})))
        standin.answer(200, converse_reply(tool_use("r2", "extend_trial", {"tenant_id": "globex", "days": 5})))
        standin.answer(200, converse_reply({"text": "Extended by five days."}, stop="end_turn"))
        replay = replay_execute(replay_id=replay_start(workflow=workflow, user=admin).pk)
        assert len(standin.requests) == 3
        assert tool_results(standin.requests[1])["r1"] == recorded  # the recorded rows, not a new read
        assert tool_results(standin.requests[2])["r2"]["data"]["dry_run"] is True
        items.append(replay.items.get())

    first, second = items
    assert first.effects == [{"tool": "extend_trial", "args": {"tenant_id": "globex", "days": 5}, "risk": "write",
                              "original": "not in the original run", }]  # fmt: skip
    assert (first.outcome, first.verdict) == ("completed", "differs")
    assert first.digest == second.digest  # same version, same recording, same model turns: the same result
    assert Tenant.objects.get(pk="globex").trial_ends_at == trial_end
