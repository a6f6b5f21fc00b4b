from __future__ import annotations

import time

import pytest
from django.conf import settings

from agent.models import ProposedAction
from agent.services.actions import proposed_action_approve, proposed_action_reject
from sandbox.models import CacheReset, FaultSwitch, Tenant, TenantConfig, TenantUser
from tests.agent.e2e.conftest import deliver, wait_for_run
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def _sandbox_state() -> tuple:
    """Everything the company's systems hold that a write could change."""
    return (
        list(
            Tenant.objects.order_by("id").values_list(
                "id", "status", "trial_ends_at", "cache_version", "cache_reset_at"
            )
        ),
        list(TenantUser.objects.order_by("id").values_list("id", "locked", "failed_logins")),
        list(TenantConfig.objects.order_by("id").values_list("id", "value")),
        CacheReset.objects.count(),
    )


def _comments(ticket, *, public: bool) -> list[str]:
    return list(ticket.comments.filter(public=public, author_kind="agent").values_list("body", flat=True))


def test_it_only_drafts_a_private_note_in_shadow(company, worker) -> None:
    company()  # config-patch is a shadow workflow
    worker.start()
    before = _sandbox_state()
    ticket = deliver(7001, "360006", "Terraform runs fail", "Error acquiring the state lock", ["config_issue"])

    run = wait_for_run(ticket, {"completed"}, worker)

    assert run.phase == "shadow"
    actions = list(run.actions.values_list("tool", "status"))
    assert actions == [
        ("run_sql", "dry_run"),
        ("search_runbooks", "dry_run"),
        ("apply_config_patch", "dry_run"),
        ("reply_to_customer", "dry_run"),
    ]
    [note] = _comments(ticket, public=False)
    assert "nothing was executed" in note
    assert "apply_config_patch (write)" in note and "terraform-lock-timeout" in note
    assert _comments(ticket, public=True) == []
    assert _sandbox_state() == before


def test_it_triages_waits_for_approval_then_executes_once_verifies_and_replies(company, worker) -> None:
    company()  # account-lockout is a triage workflow
    worker.start()
    user = TenantUser.objects.get(tenant_id="initech", email="ops@initech.example")
    assert user.locked
    ticket = deliver(7002, "360003", "Locked out", "I am locked out as ops@initech.example", ["locked_out"])

    run = wait_for_run(ticket, {"awaiting_approval"}, worker)
    executed = list(run.actions.values_list("tool", "status"))
    assert executed == [
        ("run_sql", "executed"),
        ("search_logs", "executed"),
        ("add_private_note", "executed"),
        ("route_ticket", "executed"),
        ("unlock_user", "pending"),
    ]
    [note] = _comments(ticket, public=False)
    assert "ops@initech.example" in note and "login_failed" in note
    ticket.refresh_from_db()
    assert ticket.group_id == settings.HELPDESK_PODS["identity"]
    user.refresh_from_db()
    assert user.locked  # nothing written before a human said yes

    action = run.actions.get(tool="unlock_user")
    proposed_action_approve(action=action, user=UserFactory(groups=["reviewers"]))
    # A second approval (double click, another tab) is refused and changes nothing.
    with pytest.raises(Exception, match="already decided"):
        proposed_action_approve(action=action, user=UserFactory(groups=["reviewers"]))

    run = wait_for_run(ticket, {"completed"}, worker)
    action.refresh_from_db()
    assert (action.status, action.verification) == ("executed", "passed")
    user.refresh_from_db()
    assert (user.locked, user.failed_logins) == (False, 0)
    assert _comments(ticket, public=True) == [
        "Hello, your account ops@initech.example is unlocked; you can log in again."
    ]
    ticket.refresh_from_db()
    assert ticket.status == "solved"


def test_it_resolves_a_preapproved_ticket_alone_in_autonomous(company, worker) -> None:
    company()  # stale-cache is autonomous with reset_tenant_cache pre-approved
    worker.start()
    version = Tenant.objects.get(pk="acme").cache_version
    ticket = deliver(7003, "360001", "Dashboard shows stale data", "Numbers froze at 6am", ["stale_cache"])

    run = wait_for_run(ticket, {"completed"}, worker)

    reset = run.actions.get(tool="reset_tenant_cache")
    assert (reset.status, reset.verification, reset.decided_by) == ("executed", "passed", None)
    assert Tenant.objects.get(pk="acme").cache_version == version + 1
    assert len(_comments(ticket, public=True)) == 1
    ticket.refresh_from_db()
    assert ticket.status == "solved"
    assert not run.actions.filter(decided_by__isnull=False).exists()


def test_it_hands_a_rejection_reason_to_the_engine_which_escalates_with_it(company, worker) -> None:
    company()  # trial-extension is triage
    worker.start()
    trial_end = Tenant.objects.get(pk="globex").trial_ends_at
    ticket = deliver(7004, "360002", "Extend our trial?", "One more week please", ["trial_extension"])
    run = wait_for_run(ticket, {"awaiting_approval"}, worker)

    action = run.actions.get(tool="extend_trial")
    proposed_action_reject(action=action, user=UserFactory(groups=["reviewers"]), reason="Sales must approve this")

    run = wait_for_run(ticket, {"escalated"}, worker)
    observation = run.steps.filter(kind="observation", tool_name="extend_trial").get().tool_output
    assert "Their reason: Sales must approve this" in observation["message"]
    assert "Sales must approve this" in _comments(ticket, public=False)[-1]
    assert Tenant.objects.get(pk="globex").trial_ends_at == trial_end
    assert _comments(ticket, public=True) == []


def test_it_escalates_instead_of_replying_when_the_write_did_not_take(company, worker) -> None:
    company()
    FaultSwitch.objects.filter(pk=1).update(swallow_writes=True)
    worker.start()
    version = Tenant.objects.get(pk="acme").cache_version
    ticket = deliver(7005, "360001", "Dashboard shows stale data", "Numbers froze", ["stale_cache"])

    run = wait_for_run(ticket, {"escalated"}, worker)

    reset = run.actions.get(tool="reset_tenant_cache")
    assert (reset.status, reset.verification) == ("executed", "failed")
    assert Tenant.objects.get(pk="acme").cache_version == version
    assert _comments(ticket, public=True) == []
    assert "Verification of reset_tenant_cache failed" in _comments(ticket, public=False)[-1]
    ticket.refresh_from_db()
    assert ticket.group_id == settings.HELPDESK_PODS["humans"]
    assert ticket.status != "solved"


def test_it_retries_then_escalates_when_the_admin_api_keeps_failing(company, worker) -> None:
    company()
    FaultSwitch.objects.filter(pk=1).update(error_rate=1.0, error_status=503)
    worker.start()
    ticket = deliver(7006, "360001", "Dashboard shows stale data", "Numbers froze", ["stale_cache"])

    run = wait_for_run(ticket, {"escalated"}, worker)

    attempts = list(
        run.steps.filter(kind="action", tool_name="reset_tenant_cache").values_list("tool_call_id", flat=True)
    )
    assert attempts == ["rb-2-0-main", "rb-2-1-main"]  # the engine tried again after a retryable failure
    assert all(a.status == "failed" for a in run.actions.filter(tool="reset_tenant_cache"))
    assert _comments(ticket, public=True) == []


def test_it_resumes_after_the_worker_is_killed_mid_write_and_writes_once(company, worker) -> None:
    company()
    # Slow Admin API: the worker will be in the middle of the reset when it dies.
    FaultSwitch.objects.filter(pk=1).update(latency_ms=2500)
    fast_redelivery = {"CELERY_VISIBILITY_TIMEOUT_SECONDS": "8", "AGENT_LEASE_SECONDS": "8"}
    worker.start(**fast_redelivery)
    resets_before = CacheReset.objects.filter(tenant_id="acme").count()
    ticket = deliver(7007, "360001", "Dashboard shows stale data", "Numbers froze", ["stale_cache"])

    deadline = time.monotonic() + 60
    while not ProposedAction.objects.filter(
        run__ticket=ticket, tool="reset_tenant_cache", execution_started_at__isnull=False
    ).exists():
        assert time.monotonic() < deadline, worker.logs()[-3000:]
        time.sleep(0.1)
    time.sleep(1)  # inside the Admin API call (GET tenant first, then the POST)
    worker.kill()
    action = ProposedAction.objects.get(run__ticket=ticket, tool="reset_tenant_cache")
    assert action.status == "approved"  # it never learned the outcome

    worker.start(**fast_redelivery)
    run = wait_for_run(ticket, {"completed"}, worker, timeout=90)

    assert CacheReset.objects.filter(tenant_id="acme").count() == resets_before + 1
    action.refresh_from_db()
    assert (action.status, action.verification) == ("executed", "passed")
    assert len(_comments(ticket, public=True)) == 1
    assert run.actions.filter(tool="reset_tenant_cache").count() == 1
