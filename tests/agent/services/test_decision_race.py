"""A reviewer's decision and the worker's move of the run to waiting, interleaved at the worst moment: the decision
has looked for a waiting run to resume (none yet) but not committed, and the worker moves the run to waiting and
looks for pending proposals (the decision is not visible yet). One of them must see the other: either the run
does not wait, or the decision resumes it. Otherwise the run waits for a decision already made."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from agent.models import AgentRun, ProposedAction
from agent.services.actions import agent_run_await_decisions, proposed_action_approve
from tests.factories import AgentRunFactory, ProposedActionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_never_leaves_a_run_waiting_for_a_decision_made_while_it_moved_to_waiting() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement paths are PostgreSQL's; SQLite serialises every write transaction")
    reviewer = UserFactory(groups=["reviewers"])
    run = AgentRunFactory(status=AgentRun.Status.RUNNING, ticket__tenant_link__tenant_id="acme")
    action = ProposedActionFactory(run=run, status=ProposedAction.Status.PENDING)
    token_before = AgentRun.objects.get(pk=run.pk).dispatch_token
    waited: list[bool] = []

    def worker() -> None:
        try:
            waited.append(agent_run_await_decisions(run=AgentRun.objects.select_related("ticket").get(pk=run.pk)))
        finally:
            connection.close()

    thread = threading.Thread(target=worker)

    def worker_between_resume_and_commit(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'UPDATE "agent_agentrun" SET dispatch_token' in sql and not thread.ident:
            # The decision looked for a waiting run (and did not commit yet; on PostgreSQL in the statement of the
            # decision itself): the worker moves the run now. Given a moment to finish, unless it waits for the
            # decision's transaction.
            thread.start()
            thread.join(timeout=2)
        return result

    with connection.execute_wrapper(worker_between_resume_and_commit):
        proposed_action_approve(action=action, user=reviewer)
    thread.join(timeout=30)
    assert thread.ident and not thread.is_alive() and len(waited) == 1

    run.refresh_from_db()
    assert ProposedAction.objects.get(pk=action.pk).status == ProposedAction.Status.APPROVED
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        assert waited == [True]
        assert run.dispatch_token != token_before, "the run waits, and nothing resumes it: the decision was made"
    else:
        assert (run.status, waited) == (AgentRun.Status.RUNNING, [False])


def test_it_tells_a_reviewer_a_proposal_decided_after_they_read_it_was_already_decided() -> None:
    """An approval reads the proposal without its lock and decides it in one statement conditional on its still
    being pending: another reviewer's rejection committed in between wins, and this approval changes nothing (no
    approval, no audit entry, no dispatch) and says the proposal was decided."""
    if connection.vendor != "postgresql":
        pytest.skip("the optimistic approval is PostgreSQL's")
    import psycopg

    from agentconsole.errors import ConflictError
    from audit.models import AuditEvent

    reviewer = UserFactory(groups=["reviewers"])
    run = AgentRunFactory(status=AgentRun.Status.AWAITING_APPROVAL, ticket__tenant_link__tenant_id="acme")
    action = ProposedActionFactory(run=run, status=ProposedAction.Status.PENDING)
    token_before = AgentRun.objects.get(pk=run.pk).dispatch_token
    rejected: list[bool] = []

    def reject_before_the_decision(execute, sql, params, many, context):
        if 'UPDATE "agent_proposedaction" SET' in sql and not rejected:
            db = connection.settings_dict
            dsn = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
            with psycopg.connect(**dsn, password=db["PASSWORD"] or None, autocommit=True) as other:
                other.execute(
                    "UPDATE agent_proposedaction SET status = 'rejected', decision_reason = 'No.' WHERE id = %s",
                    [action.pk],
                )
            rejected.append(True)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(reject_before_the_decision), pytest.raises(ConflictError, match="already decided"):
        proposed_action_approve(action=action.pk, user=reviewer)

    assert rejected
    assert ProposedAction.objects.get(pk=action.pk).status == ProposedAction.Status.REJECTED
    assert not AuditEvent.objects.filter(verb="action.approved", object_id=str(action.pk)).exists()
    assert AgentRun.objects.get(pk=run.pk).dispatch_token == token_before
