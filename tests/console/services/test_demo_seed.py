from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agent.models import AgentRun, ConfigPatch, RegressionCase, Runbook, Workflow
from console.demo import DEMO_TICKETS, DEMO_WORKFLOWS, DemoCredentials, demo_seed
from tickets.models import TenantLink, Ticket, WebhookEvent

pytestmark = pytest.mark.django_db

CREDENTIALS = DemoCredentials(admin_password="admin-pass-1", reviewer_password="reviewer-pass-1")


def _counts() -> tuple[int, ...]:
    models = (User, TenantLink, Workflow, Ticket, WebhookEvent, AgentRun, ConfigPatch, Runbook, RegressionCase)
    return tuple(model.objects.count() for model in models)


def test_it_seeds_once_however_often_it_runs() -> None:
    demo_seed(credentials=CREDENTIALS)
    first = _counts()
    demo_seed(credentials=CREDENTIALS)
    assert _counts() == first
    assert first[2:4] == (len(DEMO_WORKFLOWS), len(DEMO_TICKETS))
    assert set(Workflow.objects.values_list("phase", flat=True)) == {"shadow", "triage", "autonomous"}
    assert all(ticket.tenant_link is not None for ticket in Ticket.objects.all())
    # The sandbox company, seeded by its own command, has every tenant linked: tests/sandbox/seed/test_seed.py.
    assert all(workflow.playbook for workflow in Workflow.objects.all())
    # a regression suite per workflow, on the demo's own tickets
    assert {case.workflow.slug for case in RegressionCase.objects.select_related("workflow")} == {
        spec["slug"] for spec in DEMO_WORKFLOWS
    }


def test_it_creates_users_who_can_log_in_with_the_printed_passwords() -> None:
    demo_seed(credentials=CREDENTIALS)
    client = Client()
    # Through the login form, as people do (the login throttle needs the request Client.login() does not give).
    assert client.post("/accounts/login/", {"username": "admin", "password": "admin-pass-1"}).status_code == 302
    assert client.get("/admin/").status_code == 200
    client = Client()
    assert client.post("/accounts/login/", {"username": "reviewer", "password": "reviewer-pass-1"}).status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/admin/").status_code == 302  # reviewers are not staff
