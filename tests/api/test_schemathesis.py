"""Schemathesis against /api/openapi.json, in process (WSGI) on the real PostgreSQL: every operation, examples
generated from the document itself, valid and invalid. No answer may be a 5xx, and every answer must be one the
document lists, in the shape it gives."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from agent.models import ProposedAction, Step
from agentconsole.roles import ADMINS
from agentconsole.wsgi import application
from console.auth import api_token_issue
from tests.factories import AgentRunFactory, ProposedActionFactory, StepFactory, UserFactory, WorkflowFactory

# Bounded: the document has 14 operations; this many examples each keeps the whole run to seconds.
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)


@pytest.fixture
def keep_test_connection():
    """Requests go through the real WSGI handler, which closes the database connection when a request ends; the
    test's transaction lives on that connection. Django's own test client detaches the same handlers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(db, keep_test_connection) -> str:
    """An admin's API token, and a little of everything so some generated ids and slugs name real rows."""
    user = UserFactory(username="schemathesis-admin", groups=[ADMINS])
    workflow = WorkflowFactory(slug="stale-cache")
    run = AgentRunFactory(workflow=workflow)
    step = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_call_id="t1", tool_name="reset_tenant_cache")
    ProposedActionFactory(run=run, step=step, tool_call_id="t1", status=ProposedAction.Status.PENDING)
    return api_token_issue(user=user, name="schemathesis")[1]


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_it_answers_every_operation_as_documented(case, admin_token) -> None:
    # The webhook goes unsigned: it must answer 401 (documented) whatever the body.
    headers = {} if case.path == "/api/webhooks/zendesk" else {"Authorization": f"Bearer {admin_token}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
