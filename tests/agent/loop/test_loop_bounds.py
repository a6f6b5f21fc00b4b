from __future__ import annotations

import pytest
from django.core.management import call_command

from agent.loop import Outcome, run_advance
from agent.models import AgentRun
from tests.factories import AgentRunFactory, TicketFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

SEARCH_FOREVER = [{"tool": "search_runbooks", "args": {"query": "cache"}}] * 30


def _run(**workflow: object) -> AgentRun:
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="Stale data", tags=["x"])
    return AgentRunFactory(ticket=ticket, workflow=WorkflowFactory(phase="triage", **workflow), phase="triage")


def _drive(run: AgentRun) -> Outcome:
    outcome = Outcome.CONTINUE
    for _ in range(50):
        outcome = run_advance(run_id=run.pk)
        if outcome != Outcome.CONTINUE:
            break
    return outcome


def test_it_escalates_with_a_note_when_the_step_budget_is_spent(settings) -> None:
    settings.AGENT_MAX_STEPS = 7
    run = _run(playbook=SEARCH_FOREVER)
    assert _drive(run) == Outcome.DONE
    run.refresh_from_db()
    assert run.status == "escalated"
    assert "limit of 7 steps" in run.status_reason
    note = run.ticket.comments.get(public=False)
    assert "limit of 7 steps" in note.body
    run.ticket.refresh_from_db()
    assert run.ticket.group_id == settings.HELPDESK_PODS["humans"]


def test_it_escalates_when_the_working_time_is_spent(settings) -> None:
    settings.AGENT_MAX_ACTIVE_SECONDS = 1
    run = _run(playbook=SEARCH_FOREVER)
    AgentRun.objects.filter(pk=run.pk).update(active_ms=1500)
    assert run_advance(run_id=run.pk) == Outcome.DONE
    run.refresh_from_db()
    assert "longer than 1 seconds" in run.status_reason


def test_it_escalates_when_the_token_budget_is_spent(settings) -> None:
    settings.AGENT_MAX_TOKENS_PER_RUN = 1000
    run = _run(playbook=SEARCH_FOREVER)
    AgentRun.objects.filter(pk=run.pk).update(tokens_in=900, tokens_out=100)
    assert run_advance(run_id=run.pk) == Outcome.DONE
    run.refresh_from_db()
    assert "budget of 1000 tokens" in run.status_reason


def test_it_routes_an_unmatched_ticket_to_humans() -> None:
    ticket = TicketFactory(tenant_link__tenant_id="acme", subject="Hello?")
    run = AgentRunFactory(ticket=ticket, workflow=None, phase="triage")
    assert _drive(run) == Outcome.DONE
    run.refresh_from_db()
    assert run.status == "escalated"
    assert "no runbook playbook" in run.status_reason


def test_it_prints_a_transcript_from_the_debugging_command(capsys) -> None:
    WorkflowFactory(phase="triage", match_tags=["runbook_q"], playbook=SEARCH_FOREVER[:2])
    ticket = TicketFactory(tenant_link__tenant_id="acme", tags=["runbook_q"])
    call_command("agent_run_ticket", str(ticket.pk))
    out = capsys.readouterr().out
    assert "phase triage" in out
    assert 'search_runbooks {"query": "cache"}' in out
    assert "run status completed" in out
