from __future__ import annotations

import re
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from agent.models import ProposedAction
from audit.models import AuditEvent
from audit.services import audit_event_record
from console.selectors.audit import AUDIT_PAGE_SIZE
from console.views.audit import NOT_A_MEMBER
from tests.factories import AgentRunFactory, ProposedActionFactory, UserFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

URL = "/audit/"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def executed_action() -> ProposedAction:
    action = ProposedActionFactory(
        tool="extend_trial",
        args={"tenant_id": "acme", "days": 7},
        status="executed",
        execution_result={"ok": True, "data": {"trial_ends": "2026-12-01"}},
        verification="passed",
        verification_result={"ok": True, "data": {"read_back": "2026-12-01"}},
    )
    audit_event_record(verb="action.executed", obj=action, payload={"tool": "extend_trial", "ok": True})
    return action


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    response = anonymous.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_it_shows_an_outsider_nothing(outsider) -> None:
    audit_event_record(verb="secret.verb", obj=WorkflowFactory())
    response = outsider.get(URL)
    assert response.status_code == 403
    assert b"secret.verb" not in response.content
    assert NOT_A_MEMBER.encode() in response.content


def test_it_accepts_only_get(reviewer) -> None:
    assert reviewer.post(URL).status_code == 405


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_shows_who_did_what_with_the_exact_hash(request, client_name, executed_action) -> None:
    person = UserFactory(username="alice")
    workflow = WorkflowFactory()
    event = audit_event_record(verb="workflow.phase_changed", obj=workflow, payload={"to": "shadow"}, user=person)
    response = request.getfixturevalue(client_name).get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert "alice" in body
    assert "workflow.phase_changed" in body
    assert f"agent.workflow#{workflow.pk}" in body
    assert event.payload_hash in body
    # what ran and what it returned, from the ProposedAction
    assert "<code>extend_trial</code>" in body
    assert "&quot;days&quot;: 7" in body
    assert "trial_ends" in body
    assert "read_back" in body
    assert f'href="{reverse("console:ticket-detail", args=[executed_action.run.ticket_id])}"' in body


def test_it_names_the_agent_system_and_webhook(reviewer) -> None:
    workflow = WorkflowFactory()
    for kind in ("agent", "webhook"):
        audit_event_record(verb=f"by.{kind}", obj=workflow, actor_kind=kind)
    audit_event_record(verb="by.system", obj=workflow)
    body = reviewer.get(URL).content.decode()
    for label in ("Agent", "Webhook", "System"):
        assert f'<span class="badge">{label}</span>' in body


def _link(body: str, rel: str) -> str:
    found = re.search(rf'<a href="\?([^"]*)"[^>]*rel="{rel}"', body)
    assert found, f"no {rel} link"
    return "?" + found.group(1).replace("&amp;", "&")


def test_it_lists_newest_first_and_paginates(reviewer) -> None:
    workflow = WorkflowFactory()
    for n in range(AUDIT_PAGE_SIZE + 5):
        audit_event_record(verb=f"verb.n{n:03d}", obj=workflow)
    first = reviewer.get(URL).content.decode()
    assert first.count('data-testid="event"') == AUDIT_PAGE_SIZE
    assert first.index("verb.n054") < first.index("verb.n053")
    assert "verb.n004" not in first
    assert 'rel="prev"' not in first
    second = reviewer.get(URL + _link(first, "next")).content.decode()
    assert second.count('data-testid="event"') == 5
    assert "verb.n000" in second and "verb.n005" not in second
    assert 'rel="next"' not in second
    back = reviewer.get(URL + _link(second, "prev")).content.decode()
    assert back.count('data-testid="event"') == AUDIT_PAGE_SIZE
    assert back.index("verb.n054") < back.index("verb.n005")
    oldest = reviewer.get(URL, {"oldest": "1"}).content.decode()
    assert oldest.count('data-testid="event"') == AUDIT_PAGE_SIZE
    assert oldest.index("verb.n049") < oldest.index("verb.n000")  # still newest first within the page
    assert "verb.n050" not in oldest
    assert "verb.n050" in reviewer.get(URL + _link(oldest, "prev")).content.decode()


def test_it_pages_events_of_the_same_moment_by_id(reviewer) -> None:
    workflow = WorkflowFactory()
    moment = timezone.now()
    with mock.patch("django.db.models.fields.timezone.now", return_value=moment):  # one clock reading for all
        for n in range(AUDIT_PAGE_SIZE + 3):
            audit_event_record(verb=f"same.n{n:03d}", obj=workflow)
    assert set(AuditEvent.objects.values_list("created_at", flat=True)) == {moment}
    first = reviewer.get(URL).content.decode()
    second = reviewer.get(URL + _link(first, "next")).content.decode()
    seen = re.findall(r"same\.n\d{3}", first) + re.findall(r"same\.n\d{3}", second)
    assert len(seen) == len(set(seen)) == AUDIT_PAGE_SIZE + 3


# The last two hold times that overflow when converted to UTC (year 1 at +14:00, year 9999 at -14:00): a 500 before.
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "W10",
        "WyJ4IiwxXQ",
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxXQ",
        "x" * 600,
        "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwxXQ",
        "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiwxXQ",
    ],
)
def test_it_refuses_a_cursor_it_did_not_make(reviewer, cursor) -> None:
    audit_event_record(verb="some.verb", obj=WorkflowFactory())
    for key in ("after", "before"):
        response = reviewer.get(URL, {key: cursor})
        assert response.status_code == 400
        assert "The cursor is not one this list gave out" in response.content.decode()


def test_it_filters_by_verb_actor_and_object(reviewer) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first, second = WorkflowFactory(), WorkflowFactory()
    audit_event_record(verb="workflow.phase_changed", obj=first, user=alice)
    audit_event_record(verb="workflow.phase_changed", obj=second, user=bob)
    audit_event_record(verb="run.queued", obj=AgentRunFactory(), actor_kind="system")

    def events(**query: str) -> int:
        return reviewer.get(URL, query).content.decode().count('data-testid="event"')

    assert events() == 3
    assert events(verb="workflow.phase_changed") == 2
    assert events(actor="alice") == 1
    assert events(actor="system") == 1
    assert events(object=f"agent.workflow#{second.pk}") == 1
    assert events(object="agent.agentrun") == 1
    assert events(object="agent.agentrun", verb="run.queued", actor="system") == 1
    assert events(verb="workflow.phase_changed", actor="bob", object=f"agent.workflow#{first.pk}") == 0


def test_it_keeps_the_filters_in_the_page_links(reviewer) -> None:
    workflow = WorkflowFactory()
    for _ in range(AUDIT_PAGE_SIZE + 1):
        audit_event_record(verb="same.verb", obj=workflow)
    body = reviewer.get(URL, {"verb": "same.verb"}).content.decode()
    assert _link(body, "next").startswith("?verb=same.verb&after=")


def test_it_serves_the_results_as_a_fragment_to_htmx(reviewer) -> None:
    audit_event_record(verb="fragment.verb", obj=WorkflowFactory())
    response = reviewer.get(URL, {"verb": "fragment.verb"}, headers=HTMX)
    assert response.status_code == 200
    assert b'id="audit-results"' in response.content
    assert b"fragment.verb" in response.content
    assert b"<html" not in response.content
    assert b'name="verb"' not in response.content  # the filter form stays on the page


def test_it_lists_events_in_a_fixed_number_of_queries(reviewer, django_assert_max_num_queries) -> None:
    for n in range(AUDIT_PAGE_SIZE):
        action = ProposedActionFactory(execution_result={"ok": True})
        audit_event_record(verb="action.executed", obj=action, user=UserFactory(username=f"u{n}"))
        audit_event_record(verb="run.queued", obj=action.run)
    # session, user, groups, then page, actions, runs
    with django_assert_max_num_queries(6):
        response = reviewer.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="event"') == AUDIT_PAGE_SIZE
    assert (
        len(re.findall(r'href="/tickets/\d+/', body)) == AUDIT_PAGE_SIZE
    )  # action and run events both lead to their ticket
    assert AuditEvent.objects.count() == 2 * AUDIT_PAGE_SIZE
