"""The reviewer's flow in the console: next pending, claims and presence, live parts that swap only on change, an
expired session under HTMX, a stale page, and the respond / take over / close forms."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from agent.models import AgentRun, ProposedAction, Step
from console.models import Presence
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    UserFactory,
)
from tests.support import client_for

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def _pending(**kwargs: object) -> ProposedAction:
    step = StepFactory(kind=Step.Kind.ACTION, tool_name="extend_trial", run__status="awaiting_approval", **kwargs)
    return ProposedActionFactory(run=step.run, step=step, tool="extend_trial", args={"tenant_id": "acme", "days": 3})


def test_it_serves_the_oldest_unclaimed_proposal_next_and_claims_it(reviewer, reviewer_user) -> None:
    other = UserFactory(username="sam", groups=["reviewers"])
    claimed = _pending()
    claimed.run.ticket.assignee = other
    claimed.run.ticket.save()
    first, second = _pending(), _pending()

    response = reviewer.post("/next/")
    assert response["Location"] == f"/tickets/{first.run.ticket_id}/#action-{first.pk}"
    first.run.ticket.refresh_from_db()
    assert first.run.ticket.assignee == reviewer_user
    # Mine stays mine until decided: the next "next" serves it again, then the one after it once it is decided.
    assert reviewer.post("/next/")["Location"].endswith(f"#action-{first.pk}")
    ProposedAction.objects.filter(pk=first.pk).update(status="approved")
    assert reviewer.post("/next/")["Location"].endswith(f"#action-{second.pk}")
    ProposedAction.objects.filter(pk=second.pk).update(status="rejected")

    response = reviewer.post("/next/")
    assert response.status_code == 200 and b"Nothing pending" in response.content
    assert b"Nothing pending" in reviewer.get("/next/").content


def test_it_ignores_a_skip_that_is_no_proposal_id_and_honours_the_others(reviewer) -> None:
    """Whatever else the form sends as `skip` (a digit Python's int() refuses, a number past any id) is ignored, as
    words are: never a 500."""
    first, second = _pending(), _pending()
    response = reviewer.post("/next/", {"skip": ["\u00b2", "9" * 30, "x", str(first.pk)]})
    assert response.status_code == 302 and response["Location"].endswith(f"#action-{second.pk}")


def test_it_shows_the_claim_and_who_else_is_here(reviewer, reviewer_user) -> None:
    action = _pending()
    ticket = action.run.ticket
    sam = UserFactory(username="sam", groups=["reviewers"])
    sam_client = client_for(sam)
    assert sam_client.post(f"/tickets/{ticket.pk}/claim/", headers=HX).status_code == 200

    page = reviewer.get(f"/tickets/{ticket.pk}/").content.decode()
    assert "Claimed by <strong>sam</strong>" in page and "not on this page" in page
    sam_client.post(f"/tickets/{ticket.pk}/presence/", headers=HX)
    fragment = reviewer.post(f"/tickets/{ticket.pk}/presence/", headers=HX).content.decode()
    assert "Claimed by <strong>sam</strong>" in fragment and "here now" in fragment
    assert "Take the claim" in fragment
    mine = sam_client.post(f"/tickets/{ticket.pk}/presence/", headers=HX).content.decode()
    assert "(you)" in mine and 'data-testid="others">Also here: reviewer' in mine
    assert Presence.objects.count() == 2

    refused = reviewer.post(f"/actions/{action.pk}/approve/", headers=HX)
    assert refused.status_code == 409
    assert "sam has claimed this ticket" in refused.content.decode()
    # Releasing someone else's claim is refused; taking it is on purpose.
    assert reviewer.post(f"/tickets/{ticket.pk}/release/", headers=HX).status_code == 409
    taken = reviewer.post(f"/tickets/{ticket.pk}/claim/", {"take": "on"}, headers=HX).content.decode()
    assert "Claimed by <strong>reviewer</strong> (you)" in taken
    assert reviewer.post(f"/actions/{action.pk}/approve/", headers=HX).status_code == 200


def test_it_answers_a_decision_from_a_stale_page_with_the_current_card(reviewer, admin) -> None:
    action = _pending()
    assert admin.post(f"/actions/{action.pk}/reject/", {"reason": "No"}, headers=HX).status_code == 200
    response = reviewer.post(f"/actions/{action.pk}/approve/", headers=HX)
    body = response.content.decode()
    assert response.status_code == 409
    assert "This page was out of date" in body and "Nothing was changed" in body
    assert "Rejected by <strong>admin</strong>" in body
    assert "Approve &amp; run" not in body


def test_it_offers_next_pending_after_a_decision(reviewer) -> None:
    action = _pending()
    body = reviewer.post(f"/actions/{action.pk}/respond/", {"feedback": "Ask sales first."}, headers=HX).content
    assert b'data-testid="decided"' in body and b'form="next-form"' in body
    assert b"Answered by <strong>reviewer</strong>" in body and b"Ask sales first." in body
    assert reviewer.post(f"/actions/{action.pk}/respond/", {"feedback": ""}, headers=HX).status_code == 400
    assert reviewer.post(f"/actions/{action.pk}/respond/", {"feedback": "Again"}, headers=HX).status_code == 409


def test_it_swaps_a_live_part_only_when_it_changed(reviewer) -> None:
    run = AgentRunFactory(status=AgentRun.Status.RUNNING)
    url = f"/tickets/{run.ticket.pk}/live/"
    first = reviewer.get(url, headers=HX)
    digest = first.content.decode().split('"X-Live-Digest": "')[1].split('"')[0]
    assert reviewer.get(url, headers={**HX, "X-Live-Digest": digest}).status_code == 204
    TicketCommentFactory(ticket=run.ticket, body="A new customer comment")
    changed = reviewer.get(url, headers={**HX, "X-Live-Digest": digest})
    assert changed.status_code == 200 and "A new customer comment" in changed.content.decode()

    runs = reviewer.get(f"/tickets/{run.ticket.pk}/", headers=HX).content.decode()
    runs_digest = runs.split('"X-Live-Digest": "')[1].split('"')[0]
    again = reviewer.get(f"/tickets/{run.ticket.pk}/", headers={**HX, "X-Live-Digest": runs_digest})
    assert again.status_code == 204


def test_it_sends_an_expired_htmx_session_to_the_login_page(reviewer) -> None:
    action = _pending()
    Session.objects.all().delete()
    page = f"/tickets/{action.run.ticket_id}/"
    for response in (
        reviewer.post(f"/actions/{action.pk}/approve/", headers={**HX, "HX-Current-URL": f"http://testserver{page}"}),
        reviewer.get(page, headers={**HX, "HX-Current-URL": f"http://testserver{page}"}),
    ):
        assert response.status_code == 200
        assert response["HX-Redirect"] == f"/accounts/login/?next=%2Ftickets%2F{action.run.ticket_id}%2F"
        assert response.content == b""
    assert reviewer.get(page)["Location"] == f"/accounts/login/?next={page}"  # without htmx: the usual redirect
    action.refresh_from_db()
    assert action.status == "pending"


def test_it_takes_over_and_closes_from_the_ticket_page(reviewer, reviewer_user) -> None:
    action = _pending()
    run = action.run
    too_long = reviewer.post(f"/runs/{run.pk}/take-over/", {"reason": "x" * 2001}, headers=HX)
    assert too_long.status_code == 400 and b"at most 2000 characters" in too_long.content
    run.refresh_from_db()
    assert run.status != "taken_over"  # refused whole: the reason was not dropped while the run was taken over
    response = reviewer.post(f"/runs/{run.pk}/take-over/", {"reason": "I know this one"}, headers=HX)
    assert response["HX-Redirect"] == f"/tickets/{run.ticket_id}/#run-{run.pk}"
    run.refresh_from_db()
    assert run.status == "taken_over"
    page = reviewer.get(f"/tickets/{run.ticket_id}/").content.decode()
    assert "Close escalation" in page and "Claimed by <strong>reviewer</strong> (you)" in page

    refused = reviewer.post(f"/runs/{run.pk}/close/", {"outcome": "maybe"}, headers=HX)
    assert refused.status_code == 400 and refused["Content-Type"].startswith("text/plain")
    assert reviewer.post(f"/runs/{run.pk}/close/", {"outcome": "resolved", "note": "Fixed by hand"}).status_code == 302
    run.refresh_from_db()
    assert (run.outcome, run.closed_by) == ("resolved", reviewer_user)
    again = reviewer.post(f"/runs/{run.pk}/close/", {"outcome": "resolved"}, headers=HX)
    assert again.status_code == 409 and b"already closed" in again.content
    assert "Closed: Resolved by a human" in reviewer.get(f"/tickets/{run.ticket_id}/").content.decode()


def test_it_shows_what_the_agent_found_the_state_diff_and_what_comes_next(reviewer) -> None:
    action = _pending()
    run = action.run
    StepFactory(run=run, index=0, kind=Step.Kind.ACTION, tool_name="run_sql", tool_call_id="s",
                tool_input={"query": "select 1"})  # fmt: skip
    StepFactory(run=run, index=1, kind=Step.Kind.OBSERVATION, tool_name="run_sql", tool_call_id="s",
                tool_output={"ok": True, "data": {"columns": ["plan"], "rows": [["trial"]]}})  # fmt: skip
    Step.objects.filter(pk=action.step_id).update(index=2)
    ProposedAction.objects.filter(pk=action.pk).update(
        current_state={"ok": True, "read_at": "2026-01-01T10:00:00+00:00",
                       "fields": [{"field": "trial_ends_at", "current": "2026-01-10", "after": "2026-01-13"}]}
    )  # fmt: skip
    body = reviewer.get(f"/tickets/{run.ticket_id}/").content.decode()
    found = body[body.index("What the agent found") : body.index("Proposed call")]
    assert "the support views: 1 row — plan trial" in found
    assert 'data-testid="state-diff"' in body and "2026-01-10" in body and "2026-01-13" in body
    assert "Re-reads the tenant: trial_ends_at must be the previous end plus the days granted." in body
    assert body.count(f'id="action-{action.pk}"') == 1  # the transcript points up to the card, never repeats it
