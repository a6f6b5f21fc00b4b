"""A workflow's tool list is checked against the catalogue (built-in tools and the company's contracts) on save."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agent.catalogue import workflow_tools
from agent.models import Workflow
from agent.services.governance import workflow_save
from audit.models import AuditEvent
from tests.factories import UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def test_it_refuses_a_tool_the_catalogue_does_not_have_and_stores_nothing() -> None:
    workflow = Workflow(slug="lockouts", name="Lockouts", runbook="1. Unlock.", tools=["unlock_user", "unlock_users"])

    with pytest.raises(ValidationError) as caught:
        workflow_save(workflow=workflow, changed_fields=["tools"], user=UserFactory())

    message = str(caught.value)
    assert "Unknown tool(s) unlock_users" in message
    assert "unlock_user" in message.split("the catalogue has")[1]
    assert not Workflow.objects.filter(slug="lockouts").exists()


def test_it_narrows_the_tools_and_audits_the_change_as_policy() -> None:
    workflow = WorkflowFactory(phase="shadow")
    workflow.tools = ["unlock_user", "search_logs", "reply_to_customer"]

    workflow_save(workflow=workflow, changed_fields=["tools"], user=UserFactory())

    assert set(workflow_tools(workflow)) == {"unlock_user", "search_logs", "reply_to_customer"}
    assert "extend_trial" in workflow_tools(WorkflowFactory())  # no list: every tool
    event = AuditEvent.objects.get(verb="workflow.policy_changed", object_id=str(workflow.pk))
    assert event.payload["tools"]["to"] == ["unlock_user", "search_logs", "reply_to_customer"]


def test_it_refuses_to_preapprove_limit_or_follow_a_tool_outside_its_own_list_and_stores_nothing() -> None:
    workflow = WorkflowFactory(phase="shadow")
    workflow.tools = ["unlock_user", "reply_to_customer"]
    workflow.preapproved_tools = ["unlock_user", "extend_trial"]
    workflow.tool_limits = {"extend_trial": {"days": {"max": 7}}}
    workflow.playbook = [{"tool": "search_logs", "args": {"query": "login_failed"}}, {"tool": "unlock_user"}]

    with pytest.raises(ValidationError) as caught:
        workflow_save(workflow=workflow, changed_fields=["tools", "preapproved_tools", "tool_limits", "playbook"],
                      user=UserFactory())  # fmt: skip

    errors = caught.value.message_dict
    assert set(errors) == {"preapproved_tools", "tool_limits", "playbook"}
    assert errors["preapproved_tools"][0].startswith(
        "Not in this workflow's tools (unlock_user, reply_to_customer): extend_trial."
    )
    assert "): search_logs." in errors["playbook"][0]
    workflow.refresh_from_db()
    assert workflow.tools == [] and not AuditEvent.objects.filter(verb="workflow.policy_changed").exists()
