"""What one episode costs the database: a proposal, a reviewer's approval, the call run and verified, the final answer
(2 model turns, the offline engine). Fixed statement counts per advance, and every change still audited in the
transaction that made it."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.loop import Outcome, run_advance
from agent.models import AgentRun, ProposedAction
from agent.services.actions import proposed_action_approve
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, TenantLinkFactory, TicketFactory, UserFactory, WorkflowFactory
from tickets.models import TicketComment

pytestmark = pytest.mark.django_db(transaction=True)

# Statements per advance, as bench/episode.py counts them (bench/README.md "Episode" lists each one); a new one on
# the loop's path shows up here first. The first advance: the claim (with the run's transcript, calls, comments and
# workflow version), the start with its audit entry, the local ticket's first read (4: the tickets layer's; the
# tenant link loaded with the claim is not read again), the turn, the proposal with its entry, the wait with its
# entry and the lease's release, conditional on a proposal still pending.
FIRST_ADVANCE = 9
# The same, for a local ticket that already holds what the console's helpdesk says (no requester; its organization
# as its manual link has it): its first read changes nothing but the version read, recorded in the start's own
# statement.
FIRST_ADVANCE_READ_UNCHANGED = 5
# The reviewer's group, the proposal locked, the decision with its entry, the wait's weekly count and the run resumed.
APPROVAL = 3
# The claim, the call's start with the lease's renewal, the reply posted by the local helpdesk (6: the tool's own),
# the settlement with its entry, the observation and running again with its entry (these three one statement,
# conditional on the lease), the comments after the call, and the final turn with completed, its entry, the lease's
# release and the week's usage and resolution time (one statement, conditional on the lease).
SECOND_ADVANCE = 11


def _statements(captured: CaptureQueriesContext) -> int:
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return sum(1 for query in captured.captured_queries if not query["sql"].startswith(control))


def _episode_run() -> AgentRun:
    workflow = WorkflowFactory(
        phase="triage",
        playbook=[{"tool": "reply_to_customer", "args": {"body": "Done for {requester_email}."}}],
    )
    ticket = TicketFactory(
        source="local", tenant_link__tenant_id="acme", requester_email="ops@acme.example", tags=["episode"]
    )
    return AgentRunFactory(ticket=ticket, workflow=workflow, phase="triage", trigger="manual")


def test_it_works_an_episode_in_a_fixed_number_of_statements_and_audits_every_change(settings) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _episode_run()
    reviewer = UserFactory(groups=["reviewers"])

    with CaptureQueriesContext(connection) as first:
        assert run_advance(run_id=run.pk) == Outcome.PAUSED
    action = ProposedAction.objects.get(run=run)
    with CaptureQueriesContext(connection) as approval:
        proposed_action_approve(action=action, user=reviewer)
    with CaptureQueriesContext(connection) as second:
        assert run_advance(run_id=run.pk) == Outcome.DONE

    run.refresh_from_db()
    action.refresh_from_db()
    assert (run.status, run.turns, run.lease_token, run.lease_expires_at) == ("completed", 2, "", None)
    assert run.active_ms >= 0 and run.version_id is not None
    assert (action.status, action.verification, action.decided_by_id) == ("executed", "not_required", reviewer.pk)
    assert TicketComment.objects.filter(ticket=run.ticket, body="Done for ops@acme.example.").count() == 1
    run_changes = AuditEvent.objects.filter(object_type="agent.agentrun", object_id=str(run.pk)).order_by("id")
    assert [(e.verb, e.payload["from"], e.payload["to"]) for e in run_changes] == [
        ("run.status_changed", "queued", "running"),
        ("run.status_changed", "running", "awaiting_approval"),
        ("run.status_changed", "awaiting_approval", "running"),
        ("run.status_changed", "running", "completed"),
    ]
    action_changes = AuditEvent.objects.filter(object_type="agent.proposedaction", object_id=str(action.pk))
    assert [e.verb for e in action_changes.order_by("id")] == ["action.pending", "action.approved", "action.executed"]
    assert action_changes.get(verb="action.approved").actor_id == reviewer.pk
    assert (_statements(first), _statements(approval), _statements(second)) == (
        FIRST_ADVANCE,
        APPROVAL,
        SECOND_ADVANCE,
    )


def test_it_keeps_the_run_going_when_a_reviewer_decided_while_the_turn_was_dispatched(settings) -> None:
    """The run does not move to waiting, and keeps its lease, when no proposal is pending by then: the advance goes
    on and releases its lease itself."""
    settings.AGENT_LLM_PROVIDER = "offline"
    run = _episode_run()
    decided = []

    def approve_before_the_check(execute, sql, params, many, context):
        if not decided and '"agent_proposedaction" p WHERE p.run_id' in sql:  # the move to waiting
            decided.append(True)
            # A reviewer's approval, committed on another connection just before this statement's snapshot.
            db = connection.settings_dict
            dsn = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
            with psycopg.connect(**dsn, password=db["PASSWORD"] or None, autocommit=True) as other:
                other.execute("UPDATE agent_proposedaction SET status = 'approved' WHERE run_id = %s", [run.pk])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(approve_before_the_check):
        assert run_advance(run_id=run.pk) == Outcome.CONTINUE
    run.refresh_from_db()
    assert decided and (run.status, run.lease_token) == ("running", "")
    assert ProposedAction.objects.get(run=run).status == "approved"
    changes = AuditEvent.objects.filter(object_type="agent.agentrun", object_id=str(run.pk), verb="run.status_changed")
    assert [e.payload["to"] for e in changes.order_by("id")] == ["running"]


def test_it_records_a_first_read_that_changes_nothing_in_the_start_of_the_run(settings) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    workflow = WorkflowFactory(phase="triage", playbook=[{"tool": "reply_to_customer", "args": {"body": "Done."}}])
    link = TenantLinkFactory(tenant_id="acme")
    ticket = TicketFactory(source="local", tenant_link=link, organization_name=link.organization_name, tags=["e"])
    run = AgentRunFactory(ticket=ticket, workflow=workflow, phase="triage", trigger="manual")

    with CaptureQueriesContext(connection) as first:
        assert run_advance(run_id=run.pk) == Outcome.PAUSED

    ticket.refresh_from_db()
    assert ticket.context_version == "local" and ticket.context_fetched_at is not None
    assert not AuditEvent.objects.filter(object_type="tickets.ticket", object_id=str(ticket.pk)).exists()
    run_changes = AuditEvent.objects.filter(object_type="agent.agentrun", object_id=str(run.pk)).order_by("id")
    assert [e.payload["to"] for e in run_changes] == ["running", "awaiting_approval"]
    assert _statements(first) == FIRST_ADVANCE_READ_UNCHANGED
