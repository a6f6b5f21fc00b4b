from __future__ import annotations

import pytest

from tests.factories import TicketFactory

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_users_to_the_login_page(anonymous) -> None:
    response = anonymous.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_it_shows_an_outsider_nothing(outsider) -> None:
    TicketFactory(subject="Secret customer problem")
    response = outsider.get("/")
    assert response.status_code == 403
    assert b"Secret customer problem" not in response.content
    assert b"neither the reviewers nor the admins group" in response.content


@pytest.mark.parametrize("client_name", ["reviewer", "admin"])
def test_it_lists_tickets_for_reviewers_and_admins(request, client_name) -> None:
    TicketFactory(subject="Dashboard shows stale data", tenant_link__tenant_id="acme")
    response = request.getfixturevalue(client_name).get("/")
    assert response.status_code == 200
    assert b"Dashboard shows stale data" in response.content
    assert b"acme" in response.content


def test_it_lists_tickets_in_a_fixed_number_of_queries(reviewer, django_assert_max_num_queries) -> None:
    TicketFactory.create_batch(30)
    with django_assert_max_num_queries(6):
        assert reviewer.get("/").status_code == 200


def test_it_accepts_only_get(reviewer) -> None:
    assert reviewer.post("/").status_code == 405


def test_it_serves_the_login_page(anonymous) -> None:
    response = anonymous.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_it_says_the_offline_engine_is_not_an_llm(reviewer, settings) -> None:
    settings.AGENT_LLM_PROVIDER = "offline"
    assert b"Offline engine (deterministic runbook follower, not an LLM)" in reviewer.get("/").content
    settings.AGENT_LLM_PROVIDER = "bedrock"
    assert b"Claude on Amazon Bedrock (us.anthropic.claude-sonnet-4-6)" in reviewer.get("/").content
