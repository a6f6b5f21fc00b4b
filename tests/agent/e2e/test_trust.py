"""End to end, the trust rules that only show with a real worker: the real webhook, a real Celery worker process
on the real Redis broker, PostgreSQL, and the sandbox company's Admin API over HTTP. The model is the offline
engine, or Claude's Bedrock path against an HTTP Converse stand-in; Zendesk is an HTTP stand-in where used."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings

from agent.models import ProposedAction
from agent.services.actions import proposed_action_approve
from sandbox.models import CacheReset, FaultSwitch, Tenant
from tests.agent.e2e.conftest import Worker, deliver, wait_for_run
from tests.factories import UserFactory
from tests.http_standin import serve
from tests.zendesk_standin import ZendeskStandIn, serve_zendesk
from tickets.snapshot import without_marker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

FAST_REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT_SECONDS": "8", "AGENT_LEASE_SECONDS": "8"}


def _public(ticket) -> list[str]:
    return list(ticket.comments.filter(public=True, author_kind="agent").values_list("body", flat=True))


def test_it_runs_a_workflow_picked_by_the_customers_words_in_triage(company, worker) -> None:
    company()  # stale-cache is autonomous and matches the word "cache"
    worker.start()
    version = Tenant.objects.get(pk="acme").cache_version
    ticket = deliver(
        7101, "360001", "Can we extend our trial?", "We are still evaluating. Is the cache slow for trials?", []
    )

    run = wait_for_run(ticket, {"awaiting_approval"}, worker)

    assert (run.workflow.slug, run.matched_on, run.phase) == ("stale-cache", "keywords", "triage")
    assert run.actions.get(tool="reset_tenant_cache").status == "pending"
    assert Tenant.objects.get(pk="acme").cache_version == version
    assert _public(ticket) == []
    ticket.refresh_from_db()
    assert ticket.status != "solved"


def test_it_skips_the_fix_when_the_read_found_nothing_and_hands_the_ticket_to_humans(company, worker) -> None:
    company()
    worker.start()
    resets = CacheReset.objects.count()
    # Globex's logs hold no cache errors: resetting its cache would fix nothing.
    ticket = deliver(7102, "360002", "Dashboard shows stale data", "Numbers froze", ["stale_cache"])

    run = wait_for_run(ticket, {"escalated"}, worker)

    assert "Runbook step 3 (reset_tenant_cache) does not apply: search_logs found count = 0" in run.status_reason
    assert not run.actions.filter(tool="reset_tenant_cache").exists()
    assert CacheReset.objects.count() == resets
    assert _public(ticket) == []
    ticket.refresh_from_db()
    assert ticket.group_id == settings.HELPDESK_PODS["humans"]


def test_it_tells_the_customer_what_ran_after_a_reviewers_edit(company, worker) -> None:
    company()  # trial-extension is triage; its playbook proposes 7 days
    worker.start()
    start = Tenant.objects.get(pk="globex").trial_ends_at
    ticket = deliver(7103, "360002", "Extend our trial?", "One more week please", ["trial_extension"])
    run = wait_for_run(ticket, {"awaiting_approval"}, worker)

    action = run.actions.get(tool="extend_trial")
    assert action.args["days"] == 7
    proposed_action_approve(
        action=action, user=UserFactory(groups=["reviewers"]), args={"tenant_id": "globex", "days": 14}
    )

    run = wait_for_run(ticket, {"completed"}, worker)
    assert Tenant.objects.get(pk="globex").trial_ends_at == start + timedelta(days=14)
    assert _public(ticket) == ["Hello, we extended your trial by 14 days. Enjoy the extra time!"]
    observation = run.steps.get(kind="observation", tool_name="extend_trial").tool_output
    assert "days: 7 -> 14" in observation["message"]


@pytest.fixture
def zendesk() -> Iterator[ZendeskStandIn]:
    yield from serve_zendesk()


def test_it_does_not_post_a_reply_twice_after_a_crash_between_posting_and_recording(
    company, worker: Worker, zendesk: ZendeskStandIn
) -> None:
    company()  # stale-cache: autonomous; it replies, then solves
    env = {
        **FAST_REDELIVERY,
        "ZENDESK_API_URL": zendesk.url,
        "ZENDESK_EMAIL": "agent@example.com",
        "ZENDESK_API_TOKEN": "token",
    }
    zendesk.add_ticket(7104, subject="Dashboard shows stale data", tags=["stale_cache"])
    zendesk.lose_next_put_answer = 6.0  # the reply (the run's first update) lands; its answer is held back
    worker.start(**env)
    ticket = deliver(7104, "360001", "Dashboard shows stale data", "Numbers froze", ["stale_cache"])

    deadline = time.monotonic() + 60
    while not [c for c in zendesk.comments["7104"] if c["public"]]:
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.05)
    worker.kill()
    reply = ProposedAction.objects.get(run__ticket=ticket, tool="reply_to_customer")
    assert reply.status == "approved" and reply.execution_started_at is not None  # never recorded

    worker.start(**env)
    run = wait_for_run(ticket, {"completed"}, worker, timeout=90)

    assert [without_marker(c["body"]) for c in zendesk.comments["7104"] if c["public"]] == [
        "Hello, we found stale entries in your workspace's cache and refreshed it. Your dashboards show current "
        "data again. Sorry for the trouble!"
    ]
    reply.refresh_from_db()
    assert reply.status == "executed"
    assert run.steps.get(kind="observation", tool_name="reply_to_customer").tool_output["meta"]["found_by_marker"]
    solved = [r for r in zendesk.puts() if r.json()["ticket"].get("status") == "solved"]
    assert len(solved) == 1


def _converse(*blocks: dict, stop: str = "tool_use") -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": list(blocks)}},
        "stopReason": stop,
        "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
        "metrics": {"latencyMs": 10},
    }


def test_it_resumes_a_run_approved_before_it_was_marked_waiting(company, worker: Worker) -> None:
    company()  # trial-extension: triage, so the extension waits for a reviewer
    for bedrock in serve():
        worker.start(
            AGENT_LLM_PROVIDER="bedrock",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AGENT_ROLE_ARN="",
        )
        start = Tenant.objects.get(pk="globex").trial_ends_at
        reviewer = UserFactory(groups=["reviewers"])
        # The turn proposes the extension, then makes a slow read: the reviewer approves while it is in flight.
        FaultSwitch.objects.filter(pk=1).update(latency_ms=2500)
        bedrock.answer(
            200,
            _converse(
                {"toolUse": {"toolUseId": "w", "name": "extend_trial", "input": {"tenant_id": "globex", "days": 7}}},
                {"toolUse": {"toolUseId": "r", "name": "get_billing_status", "input": {"tenant_id": "globex"}}},
            ),
        )
        bedrock.answer(200, _converse({"text": "Extended the trial by a week."}, stop="end_turn"))
        ticket = deliver(7105, "360002", "Extend our trial?", "One more week please", ["trial_extension"])

        deadline = time.monotonic() + 60
        while not ProposedAction.objects.filter(run__ticket=ticket, status="pending").exists():
            assert time.monotonic() < deadline, worker.logs()[-3000:]
            time.sleep(0.02)
        proposed_action_approve(action=ProposedAction.objects.get(run__ticket=ticket, status="pending"), user=reviewer)
        FaultSwitch.objects.filter(pk=1).update(latency_ms=0)

        run = wait_for_run(ticket, {"completed"}, worker, timeout=40)
        assert Tenant.objects.get(pk="globex").trial_ends_at == start + timedelta(days=7)
        assert run.actions.get(tool="extend_trial").status == "executed"
