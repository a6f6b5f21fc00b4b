from __future__ import annotations

import pytest

from agent.lifecycle import RUN_TRANSITION_NOT_ALLOWED
from agent.models import AgentRun
from agent.selectors import workflow_match
from agent.services.intake import agent_run_create_for_new_ticket
from agent.services.runs import agent_run_transition
from agentconsole.errors import InvalidTransition
from audit.models import AuditEvent
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


def test_it_moves_a_run_through_its_lifecycle_with_timestamps_and_audit() -> None:
    run = AgentRunFactory()
    run = agent_run_transition(run=run, status=AgentRun.Status.RUNNING)
    assert run.started_at is not None and run.finished_at is None
    run = agent_run_transition(run=run, status=AgentRun.Status.ESCALATED, reason="verification failed")
    assert run.finished_at is not None
    assert list(AuditEvent.objects.filter(verb="run.status_changed").values_list("payload", flat=True)) == [
        {"from": "running", "to": "escalated", "reason": "verification failed"},
        {"from": "queued", "to": "running", "reason": ""},
    ]


def test_it_refuses_a_transition_out_of_a_final_state() -> None:
    run = AgentRunFactory(status=AgentRun.Status.COMPLETED)
    with pytest.raises(InvalidTransition) as caught:
        agent_run_transition(run=run, status=AgentRun.Status.RUNNING)
    assert caught.value.message == RUN_TRANSITION_NOT_ALLOWED.format(current="completed", target="running")


def test_it_creates_one_automatic_run_per_ticket(django_capture_on_commit_callbacks) -> None:
    ticket = TicketFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        first = agent_run_create_for_new_ticket(ticket=ticket)
        second = agent_run_create_for_new_ticket(ticket=ticket)
    assert first is not None and second is None
    assert AgentRun.objects.filter(ticket=ticket).count() == 1
    assert len(callbacks) == 1


def test_it_runs_unmatched_tickets_in_triage() -> None:
    run = agent_run_create_for_new_ticket(ticket=TicketFactory(subject="Hello", tags=[]))
    assert (run.workflow, run.phase) == (None, "triage")


def test_it_matches_tags_before_keywords_and_skips_disabled_workflows() -> None:
    by_keyword = WorkflowFactory(match_keywords=["invoice"])
    by_tag = WorkflowFactory(match_tags=["billing"])
    WorkflowFactory(match_tags=["vip"], enabled=False)
    assert workflow_match(ticket=TicketFactory(subject="Invoice wrong", tags=["billing"])) == by_tag
    assert workflow_match(ticket=TicketFactory(subject="Where is my INVOICE?", tags=[])) == by_keyword
    assert workflow_match(ticket=TicketFactory(subject="vip", tags=["vip"])) is None


def test_it_runs_a_workflow_chosen_only_by_the_customers_words_at_most_in_triage() -> None:
    cache = WorkflowFactory(phase="autonomous", match_tags=["stale_cache"], match_keywords=["cache"])
    worded = TicketFactory(subject="Extend my trial", description="Also, is the cache why my trial looks odd?")
    tagged = TicketFactory(subject="Stale numbers", tags=["stale_cache"])

    by_words = agent_run_create_for_new_ticket(ticket=worded)
    by_tag = agent_run_create_for_new_ticket(ticket=tagged)

    assert (by_words.workflow, by_words.phase, by_words.matched_on) == (cache, "triage", "keywords")
    assert (by_tag.workflow, by_tag.phase, by_tag.matched_on) == (cache, "autonomous", "tags")
    queued = AuditEvent.objects.get(verb="run.queued", object_id=str(by_words.pk))
    assert queued.payload["matched_on"] == "keywords"


def test_it_keeps_shadow_for_a_shadow_workflow_chosen_by_words() -> None:
    WorkflowFactory(phase="shadow", match_keywords=["terraform"])
    run = agent_run_create_for_new_ticket(ticket=TicketFactory(subject="Terraform fails"))
    assert (run.phase, run.matched_on) == ("shadow", "keywords")
