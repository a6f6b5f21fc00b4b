from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    UserFactory,
    WorkflowFactory,
)

pytestmark = pytest.mark.django_db

CONSOLE_APPS = {"audit", "tickets", "agent"}  # the sandbox's admin: tests/sandbox/admin


def test_it_registers_every_console_model_in_the_admin() -> None:
    from django.apps import apps

    models = {m for name in CONSOLE_APPS for m in apps.get_app_config(name).get_models()}
    assert models - set(admin.site._registry) == set()


def test_it_renders_every_changelist_and_change_page() -> None:
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    TicketCommentFactory()
    WorkflowFactory()
    ProposedActionFactory(run=StepFactory(run=AgentRunFactory()).run)
    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label not in CONSOLE_APPS:
            continue
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        assert client.get(url).status_code == 200, url
        instance = model.objects.first()
        if instance is not None:
            assert client.get(f"{url}{instance.pk}/change/").status_code == 200, url


def test_it_audits_changes_to_what_a_workflow_may_run_alone() -> None:
    from audit.models import AuditEvent

    superuser = UserFactory(username="root2", is_staff=True, is_superuser=True)
    workflow = WorkflowFactory(preapproved_tools=[], tool_limits={})
    client = Client()
    client.force_login(superuser)
    response = client.post(
        f"/admin/agent/workflow/{workflow.pk}/change/",
        {
            "slug": workflow.slug,
            "name": workflow.name,
            "description": "",
            "runbook": workflow.runbook,
            "match_tags": "[]",
            "match_keywords": "[]",
            "playbook": "[]",
            "preapproved_tools": '["extend_trial"]',
            "tool_limits": '{"extend_trial": {"days": {"max": 14}}}',
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(verb="workflow.policy_changed")
    assert event.actor == superuser
    assert event.payload["preapproved_tools"] == {"from": [], "to": ["extend_trial"]}
    assert event.payload["tool_limits"]["to"] == {"extend_trial": {"days": {"max": 14}}}
    assert "runbook" not in event.payload


def _workflow_form(**fields: str) -> dict[str, str]:
    return {
        "slug": "new-flow",
        "name": "New flow",
        "description": "",
        "runbook": "1. Look.",
        "match_tags": '["new_flow"]',
        "match_keywords": "[]",
        "playbook": "[]",
        "preapproved_tools": '["reset_tenant_cache"]',
        "tool_limits": "{}",
        "enabled": "on",
        **fields,
    }


def test_it_starts_a_workflow_added_in_the_admin_in_shadow_whatever_the_form_says() -> None:
    from agent.models import Workflow
    from audit.models import AuditEvent

    superuser = UserFactory(username="root3", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    response = client.post("/admin/agent/workflow/add/", _workflow_form(phase="autonomous"))
    assert response.status_code == 302, response.content[:2000]
    workflow = Workflow.objects.get(slug="new-flow")
    assert workflow.phase == "shadow"
    assert AuditEvent.objects.get(verb="workflow.created").payload == {"phase": "shadow"}

    response = client.post(f"/admin/agent/workflow/{workflow.pk}/change/", _workflow_form(phase="autonomous"))
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert workflow.phase == "shadow"
    assert b'name="phase"' not in client.get(f"/admin/agent/workflow/{workflow.pk}/change/").content


def test_it_shows_a_typo_in_limits_or_playbook_as_a_form_error() -> None:
    superuser = UserFactory(username="root4", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    response = client.post(
        "/admin/agent/workflow/add/",
        _workflow_form(
            tool_limits='{"reset_tenant_cache": {"calls": {"maximum": 1}}}',
            playbook='[{"tool": "search_logs", "when": {"tool": "x", "field": "count"}}]',
        ),
    )
    assert response.status_code == 200
    assert b"Unknown limit &#x27;maximum&#x27; on reset_tenant_cache.calls" in response.content
    assert b"needs one of above" in response.content


def test_it_changes_a_phase_only_through_the_gated_service() -> None:
    from agent.models import Workflow
    from agent.services.governance import NEW_WORKFLOW_NOT_SHADOW, PHASE_NOT_EDITABLE, workflow_save
    from agentconsole.errors import ConflictError

    admin_user = UserFactory(username="root5", is_staff=True, is_superuser=True)
    with pytest.raises(ConflictError, match=NEW_WORKFLOW_NOT_SHADOW):
        workflow_save(workflow=Workflow(slug="w", name="W", runbook="x", phase="autonomous"), changed_fields=[],
                      user=admin_user)  # fmt: skip
    workflow = WorkflowFactory(phase="triage")
    workflow.phase = "autonomous"
    with pytest.raises(ConflictError, match=PHASE_NOT_EDITABLE):
        workflow_save(workflow=workflow, changed_fields=["phase"], user=admin_user)
    workflow.refresh_from_db()
    assert workflow.phase == "triage"


def test_it_marks_the_run_of_a_rating_added_in_the_admin_rated_and_keeps_what_a_rating_is_of() -> None:
    from agent.models import AgentRun, Rating

    superuser = UserFactory(username="root3", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    action = ProposedActionFactory(status="dry_run")
    response = client.post(
        "/admin/agent/rating/add/", {"user": superuser.pk, "action": action.pk, "value": 1, "comment": ""}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AgentRun.objects.get(pk=action.run_id).rated
    rating = Rating.objects.get()
    page = client.get(f"/admin/agent/rating/{rating.pk}/change/").content.decode()
    assert 'name="value"' in page and 'name="action"' not in page and 'name="step"' not in page
