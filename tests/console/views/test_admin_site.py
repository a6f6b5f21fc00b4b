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

CONSOLE_APPS = {"audit", "tickets", "agent", "sandbox"}


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
