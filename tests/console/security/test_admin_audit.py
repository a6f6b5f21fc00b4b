"""One deletion rule in the Django admin: history is never deletable; configuration is, and each deletion (and
each change) leaves an AuditEvent naming the admin and the values. Complete by construction: every model
registered in the admin is checked."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client, RequestFactory

from agent.models import (
    AgentRun,
    ApiOperation,
    ConfigPatch,
    LatencyWeek,
    Notification,
    ProposedAction,
    Rating,
    RegressionCase,
    Replay,
    ReplayItem,
    Runbook,
    Step,
    ToolContract,
    UsageWeek,
    Workflow,
    WorkflowVersion,
)
from agentconsole.roles import ADMINS, REVIEWERS
from audit.admin import AuditedModelAdmin
from audit.models import AuditEvent
from console.auth import api_token_issue
from console.models import ApiToken
from tests.factories import (
    ConfigPatchFactory,
    RunbookFactory,
    TenantLinkFactory,
    UserFactory,
    WorkflowFactory,
)
from tickets.models import HelpdeskUser, TenantLink, Ticket, TicketComment, WebhookEvent

pytestmark = pytest.mark.django_db

HISTORY = {
    Ticket, TicketComment, WebhookEvent, AgentRun, Step, ProposedAction, Rating, Notification, AuditEvent,
    ApiOperation, ToolContract, WorkflowVersion, Replay, ReplayItem,
    UsageWeek, LatencyWeek,  # the dashboard's rollups: derived from history, rebuilt by a command, never deleted
}  # fmt: skip
# Regression cases are configuration: admins write their own or retire one, and each change is audited.
CONFIGURATION = {Workflow, TenantLink, HelpdeskUser, Runbook, ConfigPatch, ApiToken, User, Group, RegressionCase}
# The stand-in company (not the product) and django-axes' lockout records keep their own admins.
NOT_OURS = {"sandbox", "axes"}


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_it_applies_the_rule_to_every_model_in_the_admin() -> None:
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(username="root", is_staff=True, is_superuser=True)
    deletable, refused = set(), set()
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in NOT_OURS:
            continue
        if model_admin.has_delete_permission(request):
            assert isinstance(model_admin, AuditedModelAdmin), f"{model.__name__} is deletable without an audit"
            deletable.add(model)
        else:
            refused.add(model)
    assert (deletable, refused) == (CONFIGURATION, HISTORY)


def _delete(client: Client, obj) -> None:
    opts = obj._meta
    response = client.post(f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content[:500]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: WorkflowFactory(slug="to-go"), id="workflow"),
        pytest.param(lambda: TenantLinkFactory(tenant_id="acme"), id="tenant-link"),
        pytest.param(lambda: RunbookFactory(), id="runbook"),
        pytest.param(lambda: ConfigPatchFactory(), id="config-patch"),
        pytest.param(lambda: api_token_issue(user=UserFactory(username="bot"), name="script")[0], id="api-token"),
        pytest.param(lambda: UserFactory(username="leaver"), id="user"),
        pytest.param(lambda: Group.objects.create(name="contractors"), id="group"),
    ],
)
def test_it_records_every_deletion_it_allows(root, make) -> None:
    obj = make()
    label, pk = obj._meta.label_lower, str(obj.pk)

    _delete(root, obj)

    assert not type(obj).objects.filter(pk=pk).exists()
    event = AuditEvent.objects.get(verb="admin.deleted", object_type=label, object_id=pk)
    assert (event.actor.username, event.payload["repr"]) == ("root", str(obj))
    assert "password" not in event.payload["values"] and "token_hash" not in event.payload["values"]


def test_it_records_bulk_deletions_one_by_one(root) -> None:
    links = [TenantLinkFactory(), TenantLinkFactory()]
    response = root.post(
        "/admin/tickets/tenantlink/",
        {"action": "delete_selected", "_selected_action": [link.pk for link in links], "post": "yes"},
    )
    assert response.status_code == 302
    assert set(AuditEvent.objects.filter(verb="admin.deleted").values_list("object_id", flat=True)) == {
        str(link.pk) for link in links
    }


def test_it_refuses_to_delete_history_or_the_role_groups(root, django_user_model) -> None:
    from tests.factories import AgentRunFactory

    run = AgentRunFactory()
    reviewers, _ = Group.objects.get_or_create(name=REVIEWERS)
    admins, _ = Group.objects.get_or_create(name=ADMINS)
    for obj in (run.ticket, run, reviewers):
        opts = obj._meta
        assert (
            root.post(f"/admin/{opts.app_label}/{opts.model_name}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403
        )
    root.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [reviewers.pk, admins.pk], "post": "yes"},
    )
    assert Group.objects.filter(name__in=[REVIEWERS, ADMINS]).count() == 2
    assert Ticket.objects.filter(pk=run.ticket.pk).exists()


def test_it_records_a_change_to_a_tenant_mapping(root) -> None:
    link = TenantLinkFactory(organization_id="360001", organization_name="Acme", tenant_id="acme")
    response = root.post(
        f"/admin/tickets/tenantlink/{link.pk}/change/",
        {"organization_id": "360001", "organization_name": "Acme", "tenant_id": "globex"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(verb="admin.changed", object_id=str(link.pk))
    assert event.payload == {"fields": {"tenant_id": "globex"}}
    assert event.actor.username == "root"
