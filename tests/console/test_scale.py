"""Scale: with 10,000 tickets and their transcripts, every read page runs as many queries as with ten.

Slow by design (a large bulk seed), but kept well under a minute: rows go in with bulk_create in batches and the
few timestamps that matter are set by one UPDATE each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from audit.models import AuditEvent
from audit.services import canonical_hash
from tests.factories import WorkflowFactory
from tickets.models import TenantLink, Ticket, TicketComment

pytestmark = pytest.mark.django_db

SMALL, LARGE = 10, 10_000
BATCH = 2_000
STEPS_PER_RUN = 4
# A run's status decides its proposal's: waiting on a human, done and verified, turned down, or a failed write.
RUN_STATUSES = (
    AgentRun.Status.AWAITING_APPROVAL,
    AgentRun.Status.COMPLETED,
    AgentRun.Status.COMPLETED,
    AgentRun.Status.ESCALATED,
    AgentRun.Status.RUNNING,
    AgentRun.Status.TAKEN_OVER,
)
# Most queries each page may run (session, user and groups included), as the views' own tests document them.
BUDGETS = {
    "queue": 8,
    "counts": 4,
    "ticket": 13,  # one reads which tool contracts are in force
    "live": 5,
    "next": 4,
    "tickets": 6,
    "tickets_search": 7,  # the tenant links the words name, read first (console.ticket_search._search)
    "tickets_to_rate": 6,
    "tickets_evidence": 7,
    "workflows": 14,  # evidence of each workflow's version in force, and its regression suite
    "dashboard": 7,  # cost is summed per engine, each at its own token prices
    "audit": 6,  # keyset pages: no count
}


@dataclass(frozen=True)
class Seeded:
    first_ticket: Ticket
    pending: int


def _action_for(run: AgentRun, step: Step, deciders: list[User], n: int) -> ProposedAction:
    now = timezone.now()
    action = ProposedAction(
        run=run, step=step, tool="reset_tenant_cache", args={"tenant_id": f"t{n % 97}"}, args_hash="h", risk="write"
    )
    if run.status == AgentRun.Status.AWAITING_APPROVAL:
        action.status = ProposedAction.Status.PENDING
    elif run.status == AgentRun.Status.ESCALATED:
        action.status = ProposedAction.Status.REJECTED
        action.decision_reason = f"Wrong tenant {n % 7}"
    elif run.status == AgentRun.Status.RUNNING:
        action.status = ProposedAction.Status.APPROVED
    else:
        ok = run.status == AgentRun.Status.COMPLETED
        action.status = ProposedAction.Status.EXECUTED if ok else ProposedAction.Status.FAILED
        action.execution_result = {"ok": ok}
        action.executed_at = now
        action.verification = ProposedAction.Verification.PASSED if ok else ProposedAction.Verification.FAILED
        action.verification_result = {"cache_age_seconds": 3}
        action.original_args = {"tenant_id": "typo"} if n % 5 == 0 else None
    if action.status != ProposedAction.Status.PENDING:
        action.decided_by = deciders[n % len(deciders)]
        action.decided_at = now - timedelta(minutes=n % 90)
    return action


def _seed(count: int, *, start: int, workflows: list[Workflow], rater: User, deciders: list[User]) -> Seeded:
    """count tickets, each with a comment and one run of four steps (thought, action, observation, drafted
    note), its proposal, some ratings and two audit events; numbered from start so seeds can be stacked."""
    now = timezone.now()
    links = TenantLink.objects.bulk_create(
        [TenantLink(organization_id=f"org-{start + n}", tenant_id=f"t{start + n}") for n in range(0, count, 10)],
        batch_size=BATCH,
    )
    tickets = Ticket.objects.bulk_create(
        [
            Ticket(
                external_id=str(start + n),
                subject=f"Problem {start + n}",
                description="Numbers stopped updating.",
                tenant_link=links[n // 10],
                organization_id=links[n // 10].organization_id,
                tags=["stale_cache"],
            )
            for n in range(count)
        ],
        batch_size=BATCH,
    )
    ids = [ticket.pk for ticket in tickets]
    # auto_now_add stamps every row with "now"; a resolution time needs the ticket opened earlier.
    Ticket.objects.filter(pk__in=ids).update(created_at=now - timedelta(days=100))
    TicketComment.objects.bulk_create(
        [TicketComment(ticket=t, body="Still broken.", public=True, author_kind="customer") for t in tickets],
        batch_size=BATCH,
    )
    runs = AgentRun.objects.bulk_create(
        [
            AgentRun(
                ticket=ticket,
                workflow=workflows[n % len(workflows)],
                phase=workflows[n % len(workflows)].phase,
                trigger=AgentRun.Trigger.TICKET_CREATED,
                status=RUN_STATUSES[n % len(RUN_STATUSES)],
                engine="offline",
                tokens_in=1200,
                tokens_out=300,
                finished_at=now - timedelta(days=n % 80, hours=1)
                if RUN_STATUSES[n % len(RUN_STATUSES)] == AgentRun.Status.COMPLETED
                else None,
            )
            for n, ticket in enumerate(tickets)
        ],
        batch_size=BATCH,
    )
    AgentRun.objects.filter(pk__in=[r.pk for r in runs], finished_at__isnull=False).update(
        created_at=F("finished_at") - timedelta(hours=2)
    )
    steps = Step.objects.bulk_create(
        [
            step
            for run in runs
            for step in (
                Step(run=run, index=0, kind=Step.Kind.THOUGHT, content="The cache looks stale."),
                Step(run=run, index=1, kind=Step.Kind.ACTION, tool_name="reset_tenant_cache", tool_input={"t": 1}),
                Step(run=run, index=2, kind=Step.Kind.OBSERVATION, tool_name="reset_tenant_cache", tool_output={}),
                Step(run=run, index=3, kind=Step.Kind.ACTION, tool_name="add_private_note", tool_input={"body": "Hi"}),
            )
        ],
        batch_size=BATCH,
    )
    actions = ProposedAction.objects.bulk_create(
        [
            _action_for(run, steps[n * STEPS_PER_RUN + 1], deciders, n)
            for n, run in enumerate(runs)  # steps come back in the order they went in
        ],
        batch_size=BATCH,
    )
    Rating.objects.bulk_create(
        [Rating(user=rater, action=a, value=1 if n % 2 else -1) for n, a in enumerate(actions) if n % 3 == 0]
        + [Rating(user=rater, step=s, value=1, comment="Clear.") for s in steps[3::STEPS_PER_RUN][::5]],
        batch_size=BATCH,
    )
    events = []
    for action in actions:
        payload = {"tool": action.tool, "args": action.args}
        events.append(
            AuditEvent(
                actor_kind=AuditEvent.ActorKind.AGENT,
                verb="action.proposed",
                object_type="agent.proposedaction",
                object_id=str(action.pk),
                payload=payload,
                payload_hash=canonical_hash(payload),
            )
        )
        events.append(
            AuditEvent(
                actor_kind=AuditEvent.ActorKind.USER,
                actor=deciders[action.pk % len(deciders)],
                verb="run.status_changed",
                object_type="agent.agentrun",
                object_id=str(action.run_id),
                payload={"to": action.run.status},
                payload_hash=canonical_hash({"to": action.run.status}),
            )
        )
    AuditEvent.objects.bulk_create(events, batch_size=BATCH)
    pending = sum(a.status == ProposedAction.Status.PENDING for a in actions)
    return Seeded(first_ticket=tickets[0], pending=pending)


def _pages(ticket: Ticket) -> dict[str, str]:
    return {
        "queue": "/",
        "counts": "/queue/counts/",
        "ticket": f"/tickets/{ticket.pk}/",
        "live": f"/tickets/{ticket.pk}/live/",
        "next": "/next/",
        "tickets": "/tickets/",
        "tickets_search": "/tickets/?q=Problem&outcome=resolved&sort=oldest",
        "tickets_to_rate": "/tickets/?view=needs_rating",
        "tickets_evidence": "/tickets/?workflow=trials&evidence=approved_unedited",
        "workflows": "/workflows/",
        "dashboard": "/workflows/dashboard/",
        "audit": "/audit/",
    }


def _measure(client: Client, pages: dict[str, str]) -> dict[str, int]:
    counts = {}
    for page, url in pages.items():
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        counts[page] = len(queries)
    return counts


def test_it_serves_every_page_in_a_fixed_number_of_queries_with_ten_thousand_tickets(
    reviewer, reviewer_user, admin_user, django_assert_max_num_queries
) -> None:
    workflows = [
        WorkflowFactory(slug="stale-cache", phase=Workflow.Phase.AUTONOMOUS),
        WorkflowFactory(slug="trials", phase=Workflow.Phase.TRIAGE),
        WorkflowFactory(slug="sso", phase=Workflow.Phase.SHADOW),
    ]
    deciders = [reviewer_user, admin_user]
    small = _seed(SMALL, start=100_000, workflows=workflows, rater=reviewer_user, deciders=deciders)
    _measure(reviewer, _pages(small.first_ticket))  # warm-up: caches filled on a first request are not the pages'
    few = _measure(reviewer, _pages(small.first_ticket))

    large = _seed(LARGE - SMALL, start=200_000, workflows=workflows, rater=reviewer_user, deciders=deciders)
    assert Ticket.objects.count() == LARGE
    assert Step.objects.count() == LARGE * STEPS_PER_RUN
    many = _measure(reviewer, _pages(large.first_ticket))

    assert many == few
    for page, url in _pages(large.first_ticket).items():
        with django_assert_max_num_queries(BUDGETS[page]):
            response = reviewer.get(url)
        assert response.status_code == 200, url
    queue = reviewer.get("/").content.decode()
    assert f"<strong>{small.pending + large.pending}</strong> pending" in queue
    assert queue.count('data-testid="more-pending"') == queue.count('data-testid="more-escalations"') == 1
    ticket = reviewer.get(f"/tickets/{large.first_ticket.pk}/").content
    assert ticket.count(b'class="step step-call') == 2  # a call and its observation are one line
    tickets = reviewer.get("/tickets/").content.decode()
    assert "1,000+ tickets" in tickets and tickets.count('data-testid="ticket-row"') == 50
