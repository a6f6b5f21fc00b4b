"""Replays and regression suites through the real loop, gate and tools: a run is recorded against the sandbox
company (its Admin API over HTTP on the live server), reviewed, and then replayed."""

from __future__ import annotations

import copy
import io

import pytest
from django.core.management import call_command

from agent.catalogue import get_tool
from agent.loop import Outcome
from agent.models import AgentRun, RegressionCase, Replay, Workflow
from agent.replay import replay_execute, replay_start, suite_run_request
from agent.services.actions import proposed_action_approve
from agent.services.governance import workflow_phase_change, workflow_save
from agent.tools.base import ErrorType, ToolContext
from agentconsole.errors import ConflictError
from console.demo import DEMO_WORKFLOWS
from sandbox.models import Tenant
from tests.agent.e2e.conftest import deliver
from tests.bedrock import drive
from tests.factories import UserFactory
from tests.http_standin import Scripted, StandIn, serve
from tickets.models import Ticket, TicketComment

pytestmark = pytest.mark.django_db(transaction=True)

TRIAL = next(spec for spec in DEMO_WORKFLOWS if spec["slug"] == "trial-extension")


def _with_days(days: int) -> list[dict]:
    playbook = copy.deepcopy(TRIAL["playbook"])
    next(step for step in playbook if step["tool"] == "extend_trial")["args"]["days"] = days
    return playbook


@pytest.fixture
def people(db):
    return UserFactory(groups=["reviewers"]), UserFactory(groups=["admins"])


@pytest.fixture
def approved_trial(company, people) -> AgentRun:
    """A trial extension the offline engine worked in triage, a reviewer approved as proposed, and that ran,
    passed verification, replied and solved the ticket."""
    company()
    reviewer, _ = people
    ticket = deliver(
        91001, "360002", "Can we extend our trial?", "One more week, please.", ["trial_extension"], no_worker=True
    )
    run = AgentRun.objects.get(ticket=ticket)
    assert drive(run.pk) == Outcome.PAUSED
    proposed_action_approve(action=run.actions.get(tool="extend_trial"), user=reviewer)
    assert drive(run.pk) == Outcome.DONE
    run.refresh_from_db()
    assert (run.status, run.version.number) == ("completed", 1)
    return run


def _suite_of(workflow: Workflow, number: int) -> Replay:
    suite = Replay.objects.get(version__workflow=workflow, version__number=number, kind="suite")
    return replay_execute(replay_id=suite.pk)


def test_it_fails_the_suite_when_a_runbook_change_that_breaks_an_approved_case_fails_the_suite_and_blocks_promotion(
    approved_trial, people, settings
) -> None:
    settings.AUTONOMY_MIN_REVIEWED, settings.AUTONOMY_MIN_UNEDITED_APPROVAL_RATE = 0, 0.0  # the suite alone gates
    _, admin = people
    workflow = approved_trial.workflow
    first = replay_execute(replay_id=suite_run_request(workflow=workflow, user=admin).pk)
    assert first.passed is True
    case = RegressionCase.objects.get(workflow=workflow)
    assert (case.origin, case.expect_call) == ("approved", {"tool": "extend_trial", "args": {"tenant_id": "globex",
                                                                                              "days": 7}})  # fmt: skip

    workflow.playbook = _with_days(3)
    workflow_save(workflow=workflow, changed_fields=["playbook"], user=admin)
    broken = _suite_of(workflow, 2)  # the new version started its suite run on its own
    assert broken.passed is False
    item = broken.items.get()
    assert (item.case_result, item.verdict) == ("failed", "worse")  # the approved write is gone
    assert item.failures == ["expected extend_trial(days=7, tenant_id='globex'); it was not made"]
    with pytest.raises(ConflictError) as caught:
        workflow_phase_change(workflow=workflow, phase="autonomous", user=admin, reason="Faster trials")
    assert caught.value.extra["unmet"] == ["version 2 fails 1 of 1 regression cases"]
    assert Workflow.objects.get(pk=workflow.pk).phase == "triage"
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:  # the headless run CI uses
        call_command("suite_run", workflow.slug, stdout=out, stderr=err)
    assert exited.value.code == 1
    assert "trial-extension v2: 0/1 cases pass" in out.getvalue() and "FAIL case" in out.getvalue()
    assert "expected extend_trial(days=7, tenant_id='globex'); it was not made" in out.getvalue()
    assert "1 regression case(s) failed." in err.getvalue()

    workflow.playbook = _with_days(7)
    workflow_save(workflow=workflow, changed_fields=["playbook"], user=admin)
    assert _suite_of(workflow, 3).passed is True
    out = io.StringIO()
    call_command("suite_run", workflow.slug, stdout=out)
    assert "trial-extension v3: 1/1 cases pass" in out.getvalue() and "Every suite passes." in out.getvalue()
    workflow = workflow_phase_change(workflow=workflow, phase="autonomous", user=admin, reason="Suite passes")
    assert workflow.phase == "autonomous"


def test_it_replays_without_writing_and_gives_the_same_result_twice(
    approved_trial, people, settings, zendesk_api
) -> None:
    _, admin = people
    workflow = approved_trial.workflow
    ticket = Ticket.objects.get(pk=approved_trial.ticket_id)
    comments, tenant = TicketComment.objects.count(), Tenant.objects.get(pk="globex")
    # A version that reads something the original never read, and writes what it never wrote.
    workflow.playbook = [
        {"tool": "get_billing_status", "args": {"tenant_id": "{tenant_id}"}},
        {"tool": "reset_tenant_cache", "args": {"tenant_id": "{tenant_id}"}},
        *_with_days(14),
    ]
    workflow.tools = [*workflow.tools, "get_billing_status", "reset_tenant_cache"]  # offered, as live runs would be
    workflow_save(workflow=workflow, changed_fields=["playbook", "tools"], user=admin)
    settings.REPLAY_LIVE_READS_ALLOWED = True
    billing = {"tenant_id": "globex", "plan": "trial", "status": "trialing", "subscription": None, "invoices": []}
    for admin_api in serve(StandIn(fallback=Scripted(200, billing))):  # the company's Admin API, at its boundary
        settings.ADMIN_API_URL = admin_api.url
        first = replay_execute(replay_id=replay_start(workflow=workflow, user=admin, live_reads=True).pk)
        second = replay_execute(replay_id=replay_start(workflow=workflow, user=admin, live_reads=True).pk)
        assert [r.method for r in admin_api.requests] == ["GET", "GET"]  # the one live read, once per replay
    assert not [r for r in zendesk_api.requests if r.method != "GET"]  # nothing reached the helpdesk
    assert TicketComment.objects.count() == comments
    assert Ticket.objects.get(pk=ticket.pk).status == ticket.status
    assert Tenant.objects.get(pk="globex").trial_ends_at == tenant.trial_ends_at
    assert Tenant.objects.get(pk="globex").cache_version == tenant.cache_version

    one, two = first.items.get(), second.items.get()
    assert one.digest and one.digest == two.digest
    assert (one.effects, one.transcript, one.outcome) == (two.effects, two.transcript, two.outcome)
    effects = {effect["tool"]: effect for effect in one.effects}
    assert effects["reset_tenant_cache"]["original"] == "not in the original run"
    assert effects["extend_trial"]["args"] == {"tenant_id": "globex", "days": 14}
    assert effects["reply_to_customer"]["args"]["body"].startswith("Hello, we extended your trial by 14 days")
    sources = [call["source"] for turn in one.transcript for call in turn["calls"]]
    assert sources[:2] == ["live", "dry_run"] and "recorded" in sources
    assert one.original["status"] == "completed" and one.verdict == "worse"


def test_it_makes_a_tool_refuse_anything_but_a_read_in_a_replay_context(approved_trial, settings) -> None:
    for admin_api in serve(StandIn()):
        settings.ADMIN_API_URL = admin_api.url
        ctx = ToolContext(ticket_id=approved_trial.ticket_id, tenant_id="globex", replay=True)
        for name, args in (("extend_trial", {"tenant_id": "globex", "days": 3}), ("solve_ticket", {})):
            observation = get_tool(name).invoke(args, ctx)
            assert (observation.ok, observation.error_type) == (False, ErrorType.REFUSED)
        assert admin_api.requests == []
