from __future__ import annotations

import pytest

from agent.catalogue import get_tool
from agent.tools.base import ErrorType, Observation, ToolContext
from tests.factories import RunbookFactory, WorkflowFactory

CTX = ToolContext(ticket_id=1, tenant_id="acme")


def search(query: str) -> Observation:
    tool = get_tool("search_runbooks")
    assert tool is not None
    return tool.invoke({"query": query}, CTX)


@pytest.mark.django_db
def test_it_ranks_runbooks_by_how_many_query_terms_they_share() -> None:
    RunbookFactory(slug="stale-cache", title="Stale dashboard", body="Reset the tenant cache when numbers are stale.")
    RunbookFactory(slug="cache-only", title="Cache basics", body="How the cache works.")
    RunbookFactory(slug="unrelated", title="Invoices", body="Billing questions go to the billing pod.")

    observation = search("dashboard shows stale numbers, cache?")

    assert observation.ok is True
    slugs = [result["slug"] for result in observation.data["results"]]
    assert slugs == ["stale-cache", "cache-only"]
    assert observation.data["results"][0]["matched_terms"] == 4  # dashboard, stale, number(s), cache


@pytest.mark.django_db
def test_it_matches_tags_and_plural_forms() -> None:
    RunbookFactory(slug="locked", title="Account access", body="Check failed logins first.", tags=["lockout"])

    observation = search("user lockouts")

    assert [result["slug"] for result in observation.data["results"]] == ["locked"]


@pytest.mark.django_db
def test_it_returns_at_most_five_results() -> None:
    for n in range(7):
        RunbookFactory(slug=f"timeout-{n}", title=f"Timeout {n}", body="A timeout happened.")

    observation = search("timeout")

    assert len(observation.data["results"]) == 5
    assert observation.meta["searched"] == 7


@pytest.mark.django_db
def test_it_searches_enabled_workflows_runbooks_too() -> None:
    WorkflowFactory(slug="terraform", name="Terraform lock", runbook="Apply the terraform-lock-timeout patch.")
    WorkflowFactory(slug="old", name="Old terraform flow", runbook="Terraform, the old way.", enabled=False)

    observation = search("terraform lock")

    results = observation.data["results"]
    assert [(result["source"], result["slug"]) for result in results] == [("workflow", "terraform")]
    assert "terraform-lock-timeout" in results[0]["excerpt"]


@pytest.mark.django_db
def test_it_excerpts_around_the_first_match() -> None:
    body = ("Background. " * 60) + "To fix a stuck deploy, apply the lock patch." + (" Tail." * 60)
    RunbookFactory(slug="deploy", title="Deploys", body=body)

    observation = search("stuck deploy")

    excerpt = observation.data["results"][0]["excerpt"]
    assert "stuck deploy" in excerpt
    assert excerpt.startswith("…")
    assert len(excerpt) <= 302


@pytest.mark.django_db
def test_it_refuses_a_query_without_searchable_words() -> None:
    observation = search("the of and")

    assert observation.ok is False
    assert observation.error_type == ErrorType.INVALID_ARGUMENTS
