from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from agent.models import ProposedAction, Step, Workflow
from console.auth import api_token_issue
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TenantLinkFactory,
    TicketCommentFactory,
    TicketFactory,
    WorkflowFactory,
)


def token_client(user: object, name: str = "script") -> Client:
    _, token = api_token_issue(user=user, name=name)
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def reviewer_token(reviewer_user) -> Client:
    return token_client(reviewer_user)


@pytest.fixture
def admin_token(admin_user) -> Client:
    return token_client(admin_user)


@pytest.fixture
def outsider_token(outsider_user) -> Client:
    return token_client(outsider_user)


@dataclass
class World:
    ticket: object
    run: object
    step: object
    action: object
    workflow: Workflow


@pytest.fixture
def world(db) -> World:
    """One ticket with a comment, a run in a triage workflow awaiting a decision on one pending write."""
    workflow = WorkflowFactory(slug="stale-cache", phase=Workflow.Phase.TRIAGE)
    ticket = TicketFactory(tenant_link=TenantLinkFactory(tenant_id="acme"))
    TicketCommentFactory(ticket=ticket, body="Still broken.")
    run = AgentRunFactory(ticket=ticket, workflow=workflow, status="awaiting_approval")
    step = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="reset_tenant_cache")
    action = ProposedActionFactory(run=run, step=step, args={"tenant_id": "acme"}, status=ProposedAction.Status.PENDING)
    return World(ticket=ticket, run=run, step=step, action=action, workflow=workflow)
