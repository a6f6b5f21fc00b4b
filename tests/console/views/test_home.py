from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agent.models import AgentRun, ProposedAction, Step, Workflow
from agent.policy import Risk
from console.selectors.queue import QUEUE_PAGE
from tests.factories import AgentRunFactory, ProposedActionFactory, WorkflowFactory
from tickets.models import TenantLink, Ticket

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def _bulk_queue(count: int, workflow: Workflow) -> None:
    """count tickets, each with an awaiting run, a transcript and a pending proposal, inserted in bulk."""
    start = Ticket.objects.count()
    links = TenantLink.objects.bulk_create(
        TenantLink(organization_id=f"bulk-org-{start + i}", tenant_id=f"bulk-{start + i}") for i in range(count)
    )
    tickets = Ticket.objects.bulk_create(
        Ticket(external_id=f"bulk-{start + i}", subject=f"Bulk problem {start + i}", tenant_link=link)
        for i, link in enumerate(links)
    )
    runs = AgentRun.objects.bulk_create(
        AgentRun(
            ticket=ticket,
            workflow=workflow,
            phase=Workflow.Phase.TRIAGE,
            trigger=AgentRun.Trigger.MANUAL,
            status=AgentRun.Status.AWAITING_APPROVAL,
        )
        for ticket in tickets
    )
    Step.objects.bulk_create(
        Step(run=run, index=index, kind=Step.Kind.THOUGHT, content="Thinking.") for run in runs for index in range(3)
    )
    ProposedAction.objects.bulk_create(
        ProposedAction(run=run, tool="reset_tenant_cache", args={"tenant_id": "x"}, args_hash="h", risk=Risk.WRITE)
        for run in runs
    )


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    response = anonymous.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_shows_an_outsider_nothing(outsider) -> None:
    ProposedActionFactory(run__ticket__subject="Secret customer problem")
    response = outsider.get("/")
    assert response.status_code == 403
    assert b"Secret customer problem" not in response.content
    assert b"neither the reviewers nor the admins group" in response.content


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_lists_pending_proposals_for_reviewers_and_admins(request, client_name) -> None:
    workflow = WorkflowFactory(name="Stale cache")
    ProposedActionFactory(
        tool="extend_trial",
        run__workflow=workflow,
        run__status=AgentRun.Status.AWAITING_APPROVAL,
        run__ticket__subject="Dashboard shows stale data",
        run__ticket__tenant_link__tenant_id="acme",
    )
    response = request.getfixturevalue(client_name).get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Dashboard shows stale data" in body
    assert "acme" in body
    assert "extend_trial" in body
    assert "Stale cache" in body
    assert 'class="badge risk-write"' in body


def test_it_lists_proposals_oldest_first_and_leaves_out_decided_ones(reviewer) -> None:
    first = ProposedActionFactory(run__ticket__subject="Oldest ticket")
    ProposedActionFactory(run__ticket__subject="Newest ticket")
    ProposedActionFactory(run__ticket__subject="Already approved", status=ProposedAction.Status.APPROVED)
    ProposedAction.objects.filter(pk=first.pk).update(created_at=first.created_at.replace(year=2020))
    body = reviewer.get("/").content.decode()
    pending = body[body.index('id="pending"') : body.index('id="escalations"')]
    assert pending.index("Oldest ticket") < pending.index("Newest ticket")
    assert "Already approved" not in pending
    assert "years" in pending  # how long the oldest one has waited


def test_it_lists_working_runs_and_open_escalations_and_not_finished_ones(reviewer) -> None:
    AgentRunFactory(status=AgentRun.Status.RUNNING, ticket__subject="Working on it")
    AgentRunFactory(status=AgentRun.Status.QUEUED, ticket__subject="Waiting for a worker")
    AgentRunFactory(status=AgentRun.Status.ESCALATED, ticket__subject="Handed to humans")
    AgentRunFactory(status=AgentRun.Status.TAKEN_OVER, ticket__subject="Taken by Rita")
    AgentRunFactory(status=AgentRun.Status.ESCALATED, outcome="resolved", ticket__subject="Closed escalation")
    AgentRunFactory(status=AgentRun.Status.COMPLETED, ticket__subject="All done")
    body = reviewer.get("/").content.decode()
    escalations = body[body.index('id="escalations"') : body.index('id="working"')]
    working = body[body.index('id="working"') :]
    assert "Handed to humans" in escalations and "Taken by Rita" in escalations
    assert "Working on it" in working and "Waiting for a worker" in working
    assert "Closed escalation" not in body
    assert "All done" not in body


def test_it_filters_by_workflow_and_phase(reviewer) -> None:
    cache = WorkflowFactory(name="Cache")
    trial = WorkflowFactory(name="Trial")
    ProposedActionFactory(run__workflow=cache, run__ticket__subject="Cache ticket")
    ProposedActionFactory(run__workflow=trial, run__ticket__subject="Trial ticket")
    AgentRunFactory(workflow=trial, status=AgentRun.Status.RUNNING, ticket__subject="Trial running")
    AgentRunFactory(
        workflow=trial, phase=Workflow.Phase.SHADOW, status=AgentRun.Status.ESCALATED, ticket__subject="Shadow esc"
    )

    body = reviewer.get("/", {"workflow": cache.pk}).content.decode()
    assert "Cache ticket" in body and "Trial ticket" not in body and "Trial running" not in body

    body = reviewer.get("/", {"phase": "shadow"}).content.decode()
    assert "Shadow esc" in body and "Trial running" not in body and "Cache ticket" not in body

    body = reviewer.get("/", {"workflow": trial.pk, "phase": "triage"}).content.decode()
    assert "Trial running" in body and "Trial ticket" in body and "Shadow esc" not in body


def test_it_ignores_a_filter_it_does_not_understand(reviewer) -> None:
    ProposedActionFactory(run__ticket__subject="Still listed")
    response = reviewer.get("/", {"workflow": "abc", "phase": "sideways"})
    assert response.status_code == 200
    assert b"Still listed" in response.content
    assert b"were not understood" in response.content


def test_it_ignores_a_workflow_id_past_any_id_on_the_queue_its_counts_and_its_next_rows(reviewer) -> None:
    """A workflow id no database column holds (the embedded SQLite cannot even bind it) is a filter not
    understood, as a word is: never a 500."""
    ProposedActionFactory(run__ticket__subject="Still listed")
    huge = "9" * 30
    response = reviewer.get("/", {"workflow": huge})
    assert response.status_code == 200 and b"Still listed" in response.content
    assert b"were not understood" in response.content
    assert reviewer.get("/queue/counts/", {"workflow": huge}, headers=HX).status_code == 200
    assert reviewer.get("/", {"workflow": huge, "list": "pending", "after": "x"}, headers=HX).status_code in (200, 400)


def test_it_counts_pending_running_and_escalated_live(reviewer) -> None:
    ProposedActionFactory.create_batch(3, run__status=AgentRun.Status.AWAITING_APPROVAL)
    ProposedActionFactory(run__status=AgentRun.Status.AWAITING_APPROVAL, sla_due_at=timezone.now())
    AgentRunFactory.create_batch(2, status=AgentRun.Status.RUNNING)
    AgentRunFactory(status=AgentRun.Status.ESCALATED)
    AgentRunFactory(status=AgentRun.Status.ESCALATED, outcome="no_action")  # closed: counted nowhere
    page = reviewer.get("/").content.decode()
    assert 'hx-get="/queue/counts/" hx-trigger="every 5s"' in page
    fragment = reviewer.get("/queue/counts/", headers=HX).content.decode()
    assert "<html" not in fragment
    assert "<strong>4</strong> pending" in fragment
    assert "<strong>1</strong> past SLA" in fragment
    assert "<strong>2</strong> running" in fragment
    assert "<strong>1</strong> escalated" in fragment
    assert "<strong>0</strong> queued" in fragment


def test_it_counts_exactly_the_rows_each_list_shows_under_the_same_filters(reviewer) -> None:
    cache, trial = WorkflowFactory(name="Cache"), WorkflowFactory(name="Trial")
    ProposedActionFactory.create_batch(2, run__workflow=cache)
    ProposedActionFactory(run__workflow=trial)
    AgentRunFactory(workflow=cache, status=AgentRun.Status.ESCALATED)
    AgentRunFactory(workflow=trial, status=AgentRun.Status.ESCALATED)
    page = reviewer.get("/", {"workflow": cache.pk}).content.decode()
    assert f'hx-get="/queue/counts/?workflow={cache.pk}"' in page
    pending = page[page.index('id="pending"') : page.index('id="escalations"')]
    escalations = page[page.index('id="escalations"') : page.index('id="working"')]
    assert pending.count("data-nav-item") == 2 and "<strong>2</strong> pending" in page
    assert escalations.count("data-nav-item") == 1 and "<strong>1</strong> escalated" in page
    fragment = reviewer.get("/queue/counts/", {"workflow": cache.pk}, headers=HX).content.decode()
    assert "<strong>2</strong> pending" in fragment and "<strong>1</strong> escalated" in fragment


def test_it_shows_the_counts_only_to_reviewers(anonymous, outsider) -> None:
    assert anonymous.get("/queue/counts/").status_code == 302
    assert outsider.get("/queue/counts/").status_code == 403


def test_it_runs_the_queue_in_a_fixed_number_of_queries(reviewer, django_assert_max_num_queries) -> None:
    workflow = WorkflowFactory()
    _bulk_queue(2, workflow)
    with CaptureQueriesContext(connection) as few:
        assert reviewer.get("/").status_code == 200
    _bulk_queue(200, workflow)
    with CaptureQueriesContext(connection) as many:
        response = reviewer.get("/")
    assert b"<strong>202</strong> pending" in response.content
    assert response.content.count(b"data-nav-item") == QUEUE_PAGE  # a page of the 202, and "Show more"
    assert b'data-testid="more-pending"' in response.content
    assert len(many) == len(few)
    # session, user, groups; pending proposals, escalations, working runs, the counts, workflows for the filter
    with django_assert_max_num_queries(8):
        reviewer.get("/")
    with django_assert_max_num_queries(4):
        reviewer.get("/queue/counts/")
    more = re.search(r'hx-get="(/\?list=pending&amp;after=[\w-]+)"', response.content.decode()).group(1)
    with django_assert_max_num_queries(4):  # session, user, groups; the list's next page
        assert reviewer.get(more.replace("&amp;", "&"), headers=HX).status_code == 200


def _more(body: str, name: str) -> str | None:
    found = re.search(rf'hx-get="(/\?(?:[^"]*&amp;)?list={name}&amp;after=[\w-]+)"', body)
    return found.group(1).replace("&amp;", "&") if found else None


def _tickets(body: str) -> list[str]:
    return re.findall(r'data-nav-link href="/tickets/\d+/[^"]*">#(\S+) ', body)


def test_it_continues_each_list_by_keyset_with_show_more(reviewer) -> None:
    workflow, other = WorkflowFactory(), WorkflowFactory()
    _bulk_queue(QUEUE_PAGE * 2 + 3, workflow)
    _bulk_queue(4, other)  # filtered out below
    page = reviewer.get("/", {"workflow": workflow.pk}).content.decode()
    pending = page[page.index('id="pending"') : page.index('id="escalations"')]
    seen = _tickets(pending)
    url = _more(pending, "pending")
    assert f"workflow={workflow.pk}" in url  # the filter goes on with the list
    while url:
        fragment = reviewer.get(url, headers=HX).content.decode()
        assert "<html" not in fragment and 'id="escalations"' not in fragment
        seen += _tickets(fragment)
        url = _more(fragment, "pending")
    expected = ProposedAction.objects.filter(run__workflow=workflow).order_by("created_at", "id")
    assert seen == [action.run.ticket.external_id for action in expected.select_related("run__ticket")]
    # Without JavaScript the link serves the whole page with that list continued.
    whole = reviewer.get(_more(pending, "pending")).content.decode()
    assert 'id="escalations"' in whole and _tickets(whole)[:QUEUE_PAGE] == seen[QUEUE_PAGE : QUEUE_PAGE * 2]
    # A cursor we did not make is the first page.
    first = reviewer.get("/", {"list": "pending", "after": "nonsense"}, headers=HX).content.decode()
    assert _tickets(first) == seen[:QUEUE_PAGE]


def test_it_continues_the_escalations_most_recently_active_first(reviewer) -> None:
    runs = [AgentRunFactory(status=AgentRun.Status.ESCALATED) for _ in range(QUEUE_PAGE + 2)]
    page = reviewer.get("/").content.decode()
    escalations = page[page.index('id="escalations"') : page.index('id="working"')]
    fragment = reviewer.get(_more(escalations, "escalations"), headers=HX).content.decode()
    assert _more(fragment, "escalations") is None  # the end of the list
    newest_first = sorted(runs, key=lambda run: (run.updated_at, run.pk), reverse=True)
    assert _tickets(escalations) + _tickets(fragment) == [run.ticket.external_id for run in newest_first]


def test_it_accepts_only_get(reviewer) -> None:
    assert reviewer.post("/").status_code == 405
    assert reviewer.post("/queue/counts/").status_code == 405


def test_it_serves_the_login_page(anonymous) -> None:
    response = anonymous.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_it_says_the_offline_engine_is_not_an_llm(reviewer, settings) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    assert b"Offline engine (deterministic runbook follower, not an LLM)" in reviewer.get("/").content
    settings.AGENT_LLM_PROVIDER = "bedrock"
    assert b"Claude on Amazon Bedrock (us.anthropic.claude-sonnet-4-6)" in reviewer.get("/").content


def test_it_links_the_other_pages_in_the_nav(reviewer) -> None:
    body = reviewer.get("/").content.decode()
    for url in ("/workflows/", "/workflows/dashboard/", "/audit/"):
        assert f'href="{url}"' in body


def test_it_lists_the_queue_without_reading_each_tickets_zendesk_payload(reviewer) -> None:
    payload = {"detail": {"description": "x" * 10_000}}  # the stored Zendesk event: no list shows it
    workflow = WorkflowFactory()

    def add(n: int) -> None:
        for _ in range(n):
            ProposedActionFactory(
                run__workflow=workflow, run__ticket__raw_payload=payload, run__status=AgentRun.Status.AWAITING_APPROVAL
            )
            AgentRunFactory(workflow=workflow, ticket__raw_payload=payload, status=AgentRun.Status.ESCALATED)
            AgentRunFactory(workflow=workflow, ticket__raw_payload=payload, status=AgentRun.Status.RUNNING)

    add(1)
    with CaptureQueriesContext(connection) as one:
        assert reviewer.get("/").status_code == 200
    add(3)
    with CaptureQueriesContext(connection) as four:
        page = reviewer.get("/").content.decode()

    assert len(four) == len(one)  # nothing reads the payload of a row afterwards, one query a row
    assert not [query["sql"] for query in four if "raw_payload" in query["sql"]]
    for ticket in Ticket.objects.select_related("tenant_link"):
        assert f"#{ticket.external_id} {ticket.subject}</a>" in page
        assert f">{ticket.tenant_id}</td>" in page
    assert page.count("data-nav-item") == 12
