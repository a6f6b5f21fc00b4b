"""The demo's triage run (offline engine, local helpdesk) posts a context note a person reads in five seconds and
routes the ticket saying why that pod."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

from agent.loop import Outcome, run_advance
from agent.models import AgentRun
from agent.services.actions import proposed_action_reject
from agentconsole.roles import ADMINS, REVIEWERS
from console.demo import DemoCredentials, demo_seed
from tests.factories import UserFactory
from tests.support import zendesk_event
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


def _advance_until_it_waits(run: AgentRun) -> Outcome:
    for _ in range(20):
        outcome = run_advance(run_id=run.pk)
        if outcome != Outcome.CONTINUE:
            return outcome
    raise AssertionError("the run did not stop")


def test_it_posts_a_note_of_one_line_per_finding_and_routes_with_a_reason(company) -> None:
    for name in (REVIEWERS, ADMINS):  # a transactional test flushed the groups the data migration made
        Group.objects.get_or_create(name=name)
    company.seed()  # as `make demo` does, before the demo's own data
    demo_seed(credentials=DemoCredentials(admin_password="a-pass-123", reviewer_password="r-pass-123"))
    ticket = Ticket.objects.get(external_id="90003")  # "Locked out of my account", initech, triage phase
    assert "@" not in ticket.description  # the e-mail comes from the requester's record, not the text
    run = AgentRun.objects.get(ticket=ticket)

    assert _advance_until_it_waits(run) == Outcome.PAUSED

    [note] = ticket.comments.filter(author_kind="agent", public=False)
    lines = note.body.splitlines()
    assert lines[0] == "Lockout context for Olivia Park <ops@initech.example>:"
    findings = [line for line in lines if line.startswith("• ")]
    assert len(findings) == 2  # one line per read: the user's row, the log lines
    assert re.match(r"• support_tenant_users: 1 row — email ops@initech\.example, failed_logins 5, locked yes, "
                    r"locked_at \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC$", findings[0])  # fmt: skip
    assert re.match(r"• logs matching login_failed \"ops@initech\.example\" \(last 60 min\): 5 lines, "
                    r"from \d\d:\d\d:\d\d to \d\d:\d\d:\d\d UTC; latest: WARN login_failed ", findings[1])  # fmt: skip
    assert lines[len(findings) + 1] == (
        "Routing to identity — the pod for sign-in, passwords, SSO and MFA, account lockouts, users and roles. "
        "Why: An account lockout: identity owns sign-in and lockouts."
    )
    assert lines[-1] == f"Full data: {settings.CONSOLE_BASE_URL}/tickets/{ticket.pk}/#run-{run.pk}"
    assert len(lines) == len(findings) + 3
    assert all(len(line) <= 320 for line in lines)
    for raw in ("{", "}", '":', "[[", "null"):
        assert raw not in note.body
    ticket.refresh_from_db()
    assert ticket.group_id == settings.HELPDESK_PODS["identity"]
    route = run.actions.get(tool="route_ticket")
    assert route.execution_result["data"]["pod_owns"].startswith("Sign-in, passwords")
    assert run.actions.get(tool="unlock_user").args == {"tenant_id": "initech", "email": "ops@initech.example"}


def test_it_follows_up_on_the_customers_comment_with_the_history_and_writes_nothing(company, post_webhook) -> None:
    for name in (REVIEWERS, ADMINS):
        Group.objects.get_or_create(name=name)
    company.seed()
    demo_seed(credentials=DemoCredentials(admin_password="a-pass-123", reviewer_password="r-pass-123"))
    ticket = Ticket.objects.get(external_id="90003")
    first = AgentRun.objects.get(ticket=ticket)
    _advance_until_it_waits(first)
    proposed_action_reject(
        action=first.actions.get(tool="unlock_user"),
        user=UserFactory(groups=[REVIEWERS]),
        reason="Call the customer first.",
    )
    assert _advance_until_it_waits(first) == Outcome.DONE  # the offline engine escalates with the reason

    comment = zendesk_event(
        event_id="evt-follow-up", event_type="zen:event-type:ticket.comment_added", ticket_id="90003",
        organization_id="360003", requester_id="3600031", tags=["locked_out"], subject=ticket.subject,
        description=ticket.description,
    )  # fmt: skip
    comment["event"] = {"comment": {"id": 5001, "body": "Still locked out!", "is_public": True,
                                    "author": {"id": "3600031", "is_staff": False}}}  # fmt: skip
    assert post_webhook(comment).status_code == 202
    follow_up = AgentRun.objects.get(ticket=ticket, trigger=AgentRun.Trigger.CUSTOMER_COMMENT)

    assert _advance_until_it_waits(follow_up) == Outcome.DONE

    follow_up.refresh_from_db()
    assert follow_up.status == "completed"
    assert list(follow_up.actions.values_list("tool", flat=True)) == [
        "run_sql",
        "search_logs",
        "add_private_note",
        "route_ticket",
    ]
    note = follow_up.actions.get(tool="add_private_note").args["body"]
    assert note.startswith("Follow-up: the customer wrote again: “Still locked out!”\nEarlier on this ticket:\n")
    assert f"Run {first.pk} (Account lockout, triage phase, ticket created): escalated to humans" in note
    assert "  found: support_tenant_users: 1 row — email ops@initech.example" in note
    assert "  did: unlock_user rejected (reason: Call the customer first.)" in note
    assert "What the agent reads now:\n• support_tenant_users: 1 row" in note
