from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.models import AgentRun, ProposedAction, Step
from console.selectors.tickets import STEPS_SHOWN
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    TicketFactory,
)
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def _url(ticket: Ticket) -> str:
    return f"/tickets/{ticket.pk}/"


def _add_runs(ticket: Ticket, count: int) -> None:
    """count finished runs, each a full Thought -> Action -> Observation transcript with a proposal and a draft."""
    runs = AgentRun.objects.bulk_create(
        AgentRun(ticket=ticket, phase="triage", trigger=AgentRun.Trigger.MANUAL, status=AgentRun.Status.COMPLETED)
        for _ in range(count)
    )
    steps = Step.objects.bulk_create(
        step
        for run in runs
        for step in (
            Step(run=run, index=0, kind=Step.Kind.THOUGHT, content="Look at the cache."),
            Step(run=run, index=1, kind=Step.Kind.ACTION, tool_name="run_sql", tool_input={"query": "select 1"}),
            Step(run=run, index=2, kind=Step.Kind.OBSERVATION, tool_name="run_sql", tool_output={"ok": True}),
            Step(run=run, index=3, kind=Step.Kind.ACTION, tool_name="add_private_note", tool_input={"body": "Note"}),
        )
    )
    ProposedAction.objects.bulk_create(
        ProposedAction(run_id=step.run_id, step=step, tool="run_sql", args=step.tool_input, args_hash="h", risk="read")
        for step in steps
        if step.tool_name == "run_sql" and step.kind == Step.Kind.ACTION
    )


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    ticket = TicketFactory()
    response = anonymous.get(_url(ticket))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_it_shows_an_outsider_nothing(outsider) -> None:
    ticket = TicketFactory(subject="Secret customer problem")
    response = outsider.get(_url(ticket))
    assert response.status_code == 403
    assert b"Secret customer problem" not in response.content


def test_it_accepts_only_get(reviewer) -> None:
    assert reviewer.post(_url(TicketFactory())).status_code == 405


def test_it_answers_404_for_an_unknown_ticket(reviewer) -> None:
    assert reviewer.get("/tickets/999999/").status_code == 404


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_shows_the_ticket_and_marks_public_and_private_comments(request, client_name) -> None:
    ticket = TicketFactory(subject="Dashboard shows stale data", tenant_link__tenant_id="acme")
    TicketCommentFactory(ticket=ticket, body="Customer wrote this", public=True)
    TicketCommentFactory(ticket=ticket, body="Internal remark", public=False)
    body = request.getfixturevalue(client_name).get(_url(ticket)).content.decode()
    assert "Dashboard shows stale data" in body
    assert "acme" in body
    public = body.index("Customer wrote this")
    private = body.index("Internal remark")
    assert body.rindex("Public — the customer sees this", 0, public) > 0
    assert body.rindex("Private — internal note", 0, private) > body.rindex("Customer wrote this")


def test_it_shows_the_transcript_as_a_timeline_with_formatted_sql_and_json(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.COMPLETED)
    StepFactory(run=run, index=0, kind=Step.Kind.THOUGHT, content="Check the cache version.")
    StepFactory(
        run=run,
        index=1,
        kind=Step.Kind.ACTION,
        tool_name="run_sql",
        tool_input={"query": "select a, b from t where x=1"},
    )
    StepFactory(run=run, index=2, kind=Step.Kind.OBSERVATION, tool_name="run_sql", tool_output={"ok": True, "data": 7})
    StepFactory(run=run, index=3, kind=Step.Kind.ACTION, tool_name="extend_trial", tool_input={"days": 7})
    body = reviewer.get(_url(run.ticket)).content.decode()
    assert body.index("Check the cache version.") < body.index("SELECT\n  a,\n  b\nFROM t\nWHERE\n  x = 1")
    assert "&quot;days&quot;: 7" in body
    assert 'class="step step-observation"' in body


def test_it_shows_unparseable_sql_as_written(reviewer) -> None:
    run = AgentRunFactory()
    StepFactory(run=run, kind=Step.Kind.ACTION, tool_name="run_sql", tool_input={"query": "select (( from"})
    assert "select (( from" in reviewer.get(_url(run.ticket)).content.decode()


def test_it_polls_the_runs_while_one_works_and_stops_when_all_are_final(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    polling = re.compile(rf'hx-get="{_url(run.ticket)}\?have={run.pk}:0:0:[0-9a-f]{{16}}" hx-trigger="every 2s"')
    assert polling.search(reviewer.get(_url(run.ticket)).content.decode())
    fragment = reviewer.get(_url(run.ticket), headers=HX).content.decode()
    assert polling.search(fragment)
    assert "<html" not in fragment and 'id="runs"' in fragment
    AgentRun.objects.filter(pk=run.pk).update(status=AgentRun.Status.COMPLETED)
    fragment = reviewer.get(_url(run.ticket), headers=HX).content.decode()
    assert 'id="runs"' in fragment
    assert "every 2s" not in fragment


def test_it_grows_the_fragment_as_steps_are_persisted(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    assert "Second thought" not in reviewer.get(_url(run.ticket), headers=HX).content.decode()
    StepFactory(run=run, content="Second thought")
    assert "Second thought" in reviewer.get(_url(run.ticket), headers=HX).content.decode()


def _poll(reviewer, page: str) -> str:
    url = re.search(r'id="live" hx-get="([^"]+)"', page).group(1)
    return reviewer.get(url, headers=HX).content.decode()


def test_it_polls_for_only_the_steps_the_page_lacks(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    StepFactory(run=run, index=0, content="First thought")
    page = reviewer.get(_url(run.ticket)).content.decode()
    assert "First thought" in page
    StepFactory(run=run, index=1, content="Second thought")
    StepFactory(run=run, index=2, content="Third thought")

    poll = _poll(reviewer, page)
    assert "Second thought" in poll and "Third thought" in poll
    assert "First thought" not in poll  # the page has it
    assert f'<ol hx-swap-oob="beforeend:#timeline-{run.pk}">' in poll
    assert f'<ol class="timeline" id="timeline-{run.pk}" hx-preserve="true"></ol>' in poll
    quiet = _poll(reviewer, poll)  # the next poll, with nothing new: no step at all
    assert "thought" not in quiet and "hx-swap-oob" not in quiet
    url = re.search(r'id="live" hx-get="([^"]+)"', quiet).group(1)
    digest = quiet.split('"X-Live-Digest": "')[1].split('"')[0]
    assert reviewer.get(url, headers={**HX, "X-Live-Digest": digest}).status_code == 204


def test_it_resends_a_timeline_whose_entries_changed(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    StepFactory(run=run, index=0, content="First thought")
    StepFactory(run=run, index=1, kind=Step.Kind.ACTION, tool_name="get_tenant", tool_call_id="c1", tool_input={})
    page = reviewer.get(_url(run.ticket)).content.decode()
    # The call's result arrives: the call's own line changes, so the whole timeline is sent again.
    StepFactory(run=run, index=2, kind=Step.Kind.OBSERVATION, tool_name="get_tenant", tool_call_id="c1",
                tool_output={"ok": True, "data": {"plan": "pro"}})  # fmt: skip
    poll = _poll(reviewer, page)
    assert "First thought" in poll and "plan=pro" in poll
    assert "hx-swap-oob" not in poll and 'hx-preserve="true"></ol>' not in poll
    # A page that holds something else (an edited or stale `have`) gets the whole timeline too.
    stale = reviewer.get(f"{_url(run.ticket)}?have={run.pk}:999999:0123456789abcdef", headers=HX).content.decode()
    assert "First thought" in stale and "hx-swap-oob" not in stale
    assert reviewer.get(f"{_url(run.ticket)}?have=nonsense,1:2", headers=HX).status_code == 200


def test_it_shows_a_pending_proposal_as_a_real_action_with_its_decisions(reviewer) -> None:
    step = StepFactory(kind=Step.Kind.ACTION, tool_name="reset_tenant_cache", run__status="awaiting_approval")
    action = ProposedActionFactory(run=step.run, step=step)
    body = reviewer.get(_url(step.run.ticket)).content.decode()
    assert "Real action" in body
    assert f'action="/actions/{action.pk}/approve/"' in body
    assert f'hx-post="/actions/{action.pk}/approve/"' in body
    assert "Edit args then approve" in body
    assert f'action="/actions/{action.pk}/reject/"' in body
    assert f'action="/actions/{action.pk}/respond/"' in body
    assert f'action="/runs/{step.run.pk}/take-over/"' in body
    assert f'action="/actions/{action.pk}/rate/"' not in body  # decide first: a waiting card offers no thumbs
    assert "hx-preserve" in body  # the poll must not wipe what the reviewer is typing


def test_it_shows_a_dry_run_plainly_with_rating_only(reviewer) -> None:
    step = StepFactory(kind=Step.Kind.ACTION, tool_name="reset_tenant_cache", run__phase="shadow")
    action = ProposedActionFactory(run=step.run, step=step, status=ProposedAction.Status.DRY_RUN)
    body = reviewer.get(_url(step.run.ticket)).content.decode()
    assert "Dry run — never executed" in body
    assert "Real action" not in body
    assert f"/actions/{action.pk}/approve/" not in body
    assert f"/actions/{action.pk}/reject/" not in body
    assert f'action="/actions/{action.pk}/rate/"' in body


@pytest.mark.parametrize(
    ("verification", "text"),
    [("passed", "Verification passed"), ("failed", "Verification FAILED")],
)
def test_it_shows_the_verification_of_an_executed_write(reviewer, verification, text) -> None:
    step = StepFactory(kind=Step.Kind.ACTION, tool_name="reset_tenant_cache")
    ProposedActionFactory(
        run=step.run,
        step=step,
        status=ProposedAction.Status.EXECUTED,
        verification=verification,
        execution_result={"ok": True},
    )
    body = reviewer.get(_url(step.run.ticket)).content.decode()
    assert text in body
    assert f"verify-{verification}" in body


def test_it_offers_rating_on_drafted_notes_and_replies(reviewer) -> None:
    run = AgentRunFactory()
    note = StepFactory(run=run, kind=Step.Kind.ACTION, tool_name="add_private_note", tool_input={"body": "Dear X"})
    thought = StepFactory(run=run, kind=Step.Kind.THOUGHT)
    body = reviewer.get(_url(run.ticket)).content.decode()
    assert f'action="/steps/{note.pk}/rate/"' in body
    assert f"/steps/{thought.pk}/rate/" not in body


def test_it_renders_the_ticket_in_a_fixed_number_of_queries(reviewer, django_assert_max_num_queries) -> None:
    ticket = TicketFactory()
    TicketCommentFactory.create_batch(5, ticket=ticket)
    _add_runs(ticket, 2)
    with CaptureQueriesContext(connection) as few:
        assert reviewer.get(_url(ticket)).status_code == 200
    _add_runs(ticket, 200)
    with CaptureQueriesContext(connection) as many:
        response = reviewer.get(_url(ticket))
    assert response.content.count(b'class="step step-observation"') == 202
    assert len(many) == len(few)
    # session, user, groups; the tool contracts in force; ticket, runs, steps, their ratings, proposals, their
    # ratings and notifications, comments, presence
    with django_assert_max_num_queries(13):
        reviewer.get(_url(ticket), headers=HX)


def test_it_shows_the_requester_the_agents_own_comments_and_a_follow_ups_trigger(reviewer) -> None:
    ticket = TicketFactory(
        requester_name="Olivia Park",
        requester_email="ops@initech.example",
        organization_name="Initech Payroll",
        custom_fields=[{"id": "41", "title": "Product area", "value": "login"}],
    )
    TicketCommentFactory(ticket=ticket, body="Context: 4 failed logins.", public=False, author_kind="agent")
    TicketCommentFactory(
        ticket=ticket, body="See trace.", author_kind="human", author_name="Sam", attachments=["t.txt"]
    )
    comment = TicketCommentFactory(ticket=ticket, body="Still locked out.")
    AgentRunFactory(ticket=ticket, trigger=AgentRun.Trigger.CUSTOMER_COMMENT, trigger_comment=comment)

    page = reviewer.get(_url(ticket)).content.decode()

    assert "Olivia Park &lt;ops@initech.example&gt;" in page
    assert "Initech Payroll" in page and "Product area" in page
    assert '<span class="author author-agent">Agent Console</span>' in page
    assert "Human staff · Sam" in page and "Attachments: t.txt" in page
    assert "Follow-up: the customer wrote “Still locked out.”" in page


def test_it_puts_a_readable_finding_beside_each_reads_full_output(reviewer) -> None:
    ticket = TicketFactory()
    run = AgentRunFactory(ticket=ticket)
    StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="run_sql", tool_call_id="c1",
                tool_input={"query": "SELECT email, locked FROM support_tenant_users"})  # fmt: skip
    output = {"ok": True, "data": {"columns": ["email", "locked"], "rows": [["ops@acme.example", True]]}}
    StepFactory(
        run=run, index=1, kind=Step.Kind.OBSERVATION, tool_name="run_sql", tool_call_id="c1", tool_output=output
    )

    page = reviewer.get(_url(ticket)).content.decode()

    call = page[page.index(f'id="call-{run.steps.get(index=0).pk}"') :]
    line, details = call.split("<details>", 1)
    assert "support_tenant_users: 1 row — email ops@acme.example, locked yes</span>" in line
    assert "&quot;ops@acme.example&quot;" in details[: details.index("</details>")]  # the full output, one click away


def test_it_shows_the_reviewer_what_the_customer_wrote_after_a_proposal(reviewer) -> None:
    ticket = TicketFactory()
    run = AgentRunFactory(ticket=ticket, status="awaiting_approval")
    step = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="unlock_user", tool_call_id="u1")
    ProposedActionFactory(run=run, step=step, tool="unlock_user", status=ProposedAction.Status.PENDING)
    TicketCommentFactory(ticket=ticket, body="Never mind, I got in!")

    page = reviewer.get(_url(ticket)).content.decode()

    assert "The customer wrote after this was proposed" in page and "Never mind, I got in!" in page


def test_it_shows_an_executed_calls_arguments_and_answer_once_in_the_timeline(reviewer) -> None:
    run = AgentRunFactory()
    call = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="run_sql", tool_call_id="c1",
                       tool_input={"query": "SELECT cache_version FROM support_tenant_overview"})  # fmt: skip
    output = {"ok": True, "data": {"columns": ["cache_version"], "rows": [[4917]]}}
    StepFactory(run=run, index=1, kind=Step.Kind.OBSERVATION, tool_name="run_sql", tool_call_id="c1",
                tool_output=output)  # fmt: skip
    action = ProposedActionFactory(run=run, step=call, tool="run_sql", args=call.tool_input, risk="read",
                                   status=ProposedAction.Status.EXECUTED, execution_result=output,
                                   decision_reason="Reads run without approval outside shadow.")  # fmt: skip

    page = reviewer.get(_url(run.ticket)).content.decode()
    card = reviewer.get(f"/actions/{action.pk}/").content.decode()

    # The call's line (arguments and finding) and its Details (the SQL and the raw answer); not again on its card.
    assert page.count("support_tenant_overview") == 3
    assert page.count("4917") == 2
    assert "Allowed without a reviewer: Reads run without approval outside shadow." in page
    assert f'id="action-{action.pk}"' in page and "Execution result" not in page
    assert "Execution result" in card and "support_tenant_overview" in card  # the card's own page keeps them


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ({"ok": True, "data": {"note_id": 9}}, "Posted as a private note"),
        ({"ok": True, "data": {"dry_run": True, "message": "Shadow phase"}}, "Drafted private note"),
        ({"ok": False, "error_type": "helpdesk_error", "message": "down"}, "Drafted private note"),
        (None, "Drafted private note"),  # still waiting
    ],
)
def test_it_shows_a_notes_text_once_and_whether_it_was_posted(reviewer, output, label) -> None:
    run = AgentRunFactory()
    text = "Cache reset at 10:02, version 4 to 5."
    note = StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="add_private_note", tool_call_id="n1",
                       tool_input={"body": text})  # fmt: skip
    if output is not None:
        StepFactory(run=run, index=1, kind=Step.Kind.OBSERVATION, tool_name="add_private_note", tool_call_id="n1",
                    tool_output=output)  # fmt: skip

    page = reviewer.get(_url(run.ticket)).content.decode()
    line = page[page.index(f'id="call-{note.pk}"') :]
    line = line[: line.index("<details>")]

    assert text not in line  # the call's line leaves the text to its card
    assert page.count(text) == 2  # the card, and the raw arguments one click away
    assert f'<p class="draft-label">{label}</p>' in page
    rated = reviewer.post(f"/steps/{note.pk}/rate/", {"value": "1"}, headers=HX).content.decode()
    assert f'<p class="draft-label">{label}</p>' in rated  # the card keeps what it says once rated


def _thoughts(run: AgentRun, indexes: range) -> None:
    Step.objects.bulk_create(Step(run=run, index=n, kind=Step.Kind.THOUGHT, content=f"Thought {n}.") for n in indexes)


def _shown(body: str) -> list[int]:
    return [int(n) for n in re.findall(r"Thought (\d+)\.", body)]


def test_it_shows_a_long_runs_latest_steps_and_loads_the_earlier_ones_on_demand(reviewer, monkeypatch) -> None:
    monkeypatch.setattr("console.selectors.tickets.STEPS_SHOWN", 5)
    run = AgentRunFactory(status=AgentRun.Status.COMPLETED)
    _thoughts(run, range(12))
    page = reviewer.get(_url(run.ticket)).content.decode()
    assert _shown(page) == [7, 8, 9, 10, 11]
    earlier = f"/tickets/{run.ticket.pk}/runs/{run.pk}/earlier/?before=7"
    assert f'hx-get="{earlier}"' in page and "(7 before these)" in page
    fragment = reviewer.get(earlier, headers=HX).content.decode()
    assert _shown(fragment) == [2, 3, 4, 5, 6] and "<html" not in fragment
    last = reviewer.get(f"/tickets/{run.ticket.pk}/runs/{run.pk}/earlier/?before=2", headers=HX).content.decode()
    assert _shown(last) == [0, 1] and "earlier-steps" not in last  # the start of the transcript
    # Without JavaScript the link opens the page with every step.
    response = reviewer.get(earlier)
    assert response.status_code == 302 and response["Location"] == f"{_url(run.ticket)}?steps=all#run-{run.pk}"
    assert _shown(reviewer.get(_url(run.ticket), {"steps": "all"}).content.decode()) == list(range(12))


def test_it_refuses_an_earlier_steps_request_it_cannot_answer(reviewer, outsider) -> None:
    run, other = AgentRunFactory(), AgentRunFactory()
    base = f"/tickets/{run.ticket.pk}/runs/{run.pk}/earlier/"
    for bad in ("", "x", "-1", "0", "99999999999", "\u00b2", " 3"):
        response = reviewer.get(base, {"before": bad}, headers=HX)
        assert response.status_code == 400 and b"index of a step" in response.content
    assert reviewer.get(f"/tickets/{run.ticket.pk}/runs/{other.pk}/earlier/?before=3", headers=HX).status_code == 404
    assert outsider.get(f"{base}?before=3", headers=HX).status_code == 403
    assert reviewer.post(f"{base}?before=3", headers=HX).status_code == 405


def test_it_polls_a_long_run_for_its_new_steps_only_while_its_window_slides(reviewer, monkeypatch) -> None:
    monkeypatch.setattr("console.selectors.tickets.STEPS_SHOWN", 5)
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    _thoughts(run, range(8))
    page = reviewer.get(_url(run.ticket)).content.decode()
    assert _shown(page) == [3, 4, 5, 6, 7]
    _thoughts(run, range(8, 15))  # more new steps than the page shows: it still gets only those
    poll = _poll(reviewer, page)
    assert _shown(poll) == list(range(8, 15))
    assert f'<ol hx-swap-oob="beforeend:#timeline-{run.pk}">' in poll
    assert _shown(_poll(reviewer, poll)) == []


def test_it_renders_a_long_run_in_the_queries_of_a_short_one(reviewer, django_assert_max_num_queries) -> None:
    short, long = AgentRunFactory(), AgentRunFactory()
    _thoughts(short, range(3))
    _thoughts(long, range(600))
    with CaptureQueriesContext(connection) as few:
        reviewer.get(_url(short.ticket))
    with CaptureQueriesContext(connection) as many:
        body = reviewer.get(_url(long.ticket)).content.decode()
    assert len(many) == len(few)
    assert len(_shown(body)) == STEPS_SHOWN


def test_it_loads_earlier_steps_in_a_fixed_number_of_queries(reviewer, monkeypatch) -> None:
    monkeypatch.setattr("console.selectors.tickets.STEPS_SHOWN", 50)
    short, long = AgentRunFactory(), AgentRunFactory()
    _thoughts(short, range(13))
    _thoughts(long, range(400))
    counts = []
    for run, before in ((short, 13), (long, 400)):
        with CaptureQueriesContext(connection) as queries:
            response = reviewer.get(f"/tickets/{run.ticket.pk}/runs/{run.pk}/earlier/?before={before}", headers=HX)
        assert response.status_code == 200
        counts.append(len(queries))
    # session, user, groups; the run; its steps, their ratings and proposals (with theirs and notifications)
    assert counts[0] == counts[1] <= 9
