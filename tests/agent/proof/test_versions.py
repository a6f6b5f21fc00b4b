"""Workflow versions: made when the content in force changes, never changed after; evidence and promotion gates
counted per version."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agent.models import AgentRun, Rating, Workflow, WorkflowVersion
from agent.selectors.evidence import version_evidence_many
from agent.services.governance import TRIAGE_CRITERIA_UNMET, workflow_phase_change, workflow_save
from agent.versions import agent_run_pin_version, version_changes, workflow_version_ensure
from agentconsole.errors import ConflictError
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def test_it_makes_a_new_version_on_every_change_and_never_changes_an_old_one(admin_user, settings) -> None:
    workflow = WorkflowFactory(runbook="1. Look.")
    first = workflow_version_ensure(workflow=workflow)
    assert workflow_version_ensure(workflow=workflow) == first  # nothing changed: the same version

    workflow.runbook = "1. Look harder."
    workflow_save(workflow=workflow, changed_fields=["runbook"], user=admin_user)
    second = WorkflowVersion.objects.get(workflow=workflow, number=2)
    assert (second.runbook, version_changes(older=first, newer=second)) == ("1. Look harder.", ["runbook"])

    settings.AGENT_LLM_PROVIDER, settings.BEDROCK_MODEL_ID = "bedrock", "anthropic.claude-sonnet-4"
    third = workflow_version_ensure(workflow=workflow)
    assert (third.number, third.engine) == (3, "bedrock:anthropic.claude-sonnet-4")
    assert version_changes(older=second, newer=third) == ["model"]

    first.refresh_from_db()
    assert first.runbook == "1. Look."
    first.runbook = "rewritten"
    with pytest.raises(ValueError, match="immutable"):
        first.save()
    assert WorkflowVersion.objects.get(pk=first.pk).runbook == "1. Look."
    assert AuditEvent.objects.filter(verb="workflow.version_created").count() == 3


def test_it_pins_the_version_a_run_runs_when_it_starts() -> None:
    workflow = WorkflowFactory()
    run = AgentRunFactory(workflow=workflow, version=None)
    run = agent_run_pin_version(run=run)
    assert AgentRun.objects.get(pk=run.pk).version.number == 1
    Workflow.objects.filter(pk=workflow.pk).update(playbook=[{"tool": "run_sql", "args": {"query": "SELECT 1"}}])
    workflow.refresh_from_db()
    later = agent_run_pin_version(run=AgentRunFactory(workflow=workflow, version=None))
    assert later.version.number == 2
    assert agent_run_pin_version(run=run).version.number == 1  # a pinned run keeps its version


def test_it_counts_evidence_per_version_honestly(reviewer_user) -> None:
    workflow = WorkflowFactory()
    old = AgentRunFactory(workflow=workflow)
    for n in range(3):
        ProposedActionFactory(run=old, tool_call_id=f"o{n}", decided_by=reviewer_user, status="executed",
                              verification="passed")  # fmt: skip
    Workflow.objects.filter(pk=workflow.pk).update(runbook="2. New steps.")
    workflow.refresh_from_db()
    new = AgentRunFactory(workflow=workflow, status="completed", finished_at=timezone.now())
    assert (old.version.number, new.version.number) == (1, 2)
    decided = {"decided_by": reviewer_user, "decided_at": timezone.now()}
    ProposedActionFactory(run=new, tool_call_id="a", status="executed", verification="passed", **decided)
    ProposedActionFactory(run=new, tool_call_id="b", status="failed", **decided)  # approved, then failed to run
    ProposedActionFactory(run=new, tool_call_id="c", status="executed", verification="failed", **decided)
    ProposedActionFactory(run=new, tool_call_id="d", status="uncertain", **decided)
    AgentRunFactory(workflow=workflow, phase="shadow", status="completed", finished_at=timezone.now())

    evidence = version_evidence_many(version_ids=[old.version_id, new.version_id])

    assert (evidence[old.version_id].reviewed, evidence[old.version_id].approved_unedited) == (3, 3)
    latest = evidence[new.version_id]
    assert (latest.reviewed, latest.approved_unedited, latest.execution_failed) == (4, 1, 3)
    assert latest.unedited_approval_rate == 0.25
    assert (latest.resolved_runs, latest.drafted_runs) == (1, 1)  # the shadow run drafted, it resolved nothing


def test_it_gates_shadow_to_triage_on_the_ratings_of_the_version_in_force(admin_user, reviewer_user, settings) -> None:
    settings.TRIAGE_MIN_RATINGS, settings.TRIAGE_MIN_THUMBS_UP_RATE = 2, 0.5
    workflow = WorkflowFactory(phase="shadow")
    old = AgentRunFactory(workflow=workflow, phase="shadow")
    for user in (reviewer_user, admin_user):
        Rating.objects.create(user=user, step=StepFactory(run=old), value=1)
    Workflow.objects.filter(pk=workflow.pk).update(runbook="A changed runbook.")
    workflow.refresh_from_db()

    # The ratings were earned by version 1; version 2 has none.
    with pytest.raises(ConflictError) as caught:
        workflow_phase_change(workflow=workflow, phase="triage", user=admin_user, reason="Drafts look right")
    assert caught.value.message == TRIAGE_CRITERIA_UNMET.format(unmet="0 rated drafts, 2 needed")
    assert Workflow.objects.get(pk=workflow.pk).phase == "shadow"

    new = AgentRunFactory(workflow=workflow, phase="shadow")
    Rating.objects.create(user=reviewer_user, step=StepFactory(run=new), value=1)
    Rating.objects.create(user=admin_user, step=StepFactory(run=new), value=-1)
    workflow = workflow_phase_change(workflow=workflow, phase="triage", user=admin_user, reason="Earned")
    assert workflow.phase == "triage"
    payload = AuditEvent.objects.get(verb="workflow.phase_changed").payload
    assert (payload["version"], payload["override"], payload["unmet"]) == (2, False, [])


def test_it_lets_an_admin_override_the_triage_gate_with_a_reason(admin_user) -> None:
    workflow = WorkflowFactory(phase="shadow")
    workflow_phase_change(workflow=workflow, phase="triage", user=admin_user, reason="Pilot", override=True)
    payload = AuditEvent.objects.get(verb="workflow.phase_changed").payload
    assert payload["override"] is True and payload["unmet"][0].startswith("0 rated drafts")


def test_it_does_not_gate_a_demotion(admin_user) -> None:
    workflow = WorkflowFactory(phase="autonomous")
    assert workflow_phase_change(workflow=workflow, phase="shadow", user=admin_user, reason="Bad week").phase == (
        "shadow"
    )


def test_it_records_the_workflow_s_own_tool_set_and_versions_a_change_to_it(admin_user) -> None:
    workflow = WorkflowFactory(runbook="1. Look.")
    everything = workflow_version_ensure(workflow=workflow)
    assert {"run_sql", "search_logs"} <= {tool["name"] for tool in everything.tools}

    workflow.tools = ["run_sql", "reply_to_customer"]
    workflow_save(workflow=workflow, changed_fields=["tools"], user=admin_user)
    narrowed = WorkflowVersion.objects.get(workflow=workflow, number=2)

    assert [tool["name"] for tool in narrowed.tools] == ["reply_to_customer", "run_sql", "escalate_to_human"]
    changes = version_changes(older=everything, newer=narrowed)
    assert "tool set" in changes and "runbook" not in changes  # "contracts" too when a write left the set
