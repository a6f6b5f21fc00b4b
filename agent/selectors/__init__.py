"""The agent's reads: which workflow a ticket gets, runs and proposals for the API, replays for their pages.
Evidence for promotion is in `evidence.py`, a proposal's context for its reviewer in `proposals.py`."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from agent.models import AgentRun, ProposedAction, RegressionCase, Replay, ReplayItem, Step, Workflow
from agent.selectors.evidence import Evidence, workflow_evidence_many
from tickets.models import Ticket


@dataclass(frozen=True)
class WorkflowChoice:
    workflow: Workflow | None
    matched_on: str  # AgentRun.MatchedOn

    @property
    def phase(self) -> str:
        """The phase a run starts in. Words the customer wrote are no trusted signal: a workflow they alone chose
        runs at most in triage, so its writes wait for a reviewer; autonomy needs a tag the helpdesk's own rules
        set. A ticket no workflow matches runs with triage rules."""
        if self.workflow is None:
            return Workflow.Phase.TRIAGE
        if self.matched_on == AgentRun.MatchedOn.KEYWORDS and self.workflow.phase == Workflow.Phase.AUTONOMOUS:
            return Workflow.Phase.TRIAGE
        return self.workflow.phase


def workflow_choice(*, ticket: Ticket) -> WorkflowChoice:
    """The enabled workflow for a ticket and what chose it: a tag match wins over a keyword match; ties go to the
    oldest workflow."""
    workflows = list(Workflow.objects.filter(enabled=True).order_by("created_at", "id"))
    tags = set(ticket.tags)
    for workflow in workflows:
        if tags.intersection(workflow.match_tags):
            return WorkflowChoice(workflow, AgentRun.MatchedOn.TAGS)
    text = f"{ticket.subject}\n{ticket.description}".lower()
    for workflow in workflows:
        if any(keyword.lower() in text for keyword in workflow.match_keywords if keyword.strip()):
            return WorkflowChoice(workflow, AgentRun.MatchedOn.KEYWORDS)
    return WorkflowChoice(None, AgentRun.MatchedOn.NONE)


def workflow_match(*, ticket: Ticket) -> Workflow | None:
    return workflow_choice(ticket=ticket).workflow


def run_transcript(*, run_id: int) -> list[Step]:
    return list(Step.objects.filter(run_id=run_id).order_by("index"))


# --- Versions, suites and replays, for their pages --------------------------------------------------------------

REPLAYS_SHOWN = 10


def regression_case_list(*, workflow: Workflow) -> list[RegressionCase]:
    cases = RegressionCase.objects.filter(workflow=workflow, active=True).select_related("ticket")
    return list(cases.defer("ticket__raw_payload").order_by("-id"))


def replay_list(*, workflow: Workflow) -> list[Replay]:
    return list(Replay.objects.filter(workflow=workflow).select_related("version").order_by("-id")[:REPLAYS_SHOWN])


@dataclass(frozen=True)
class ReplayDetail:
    """A replay's page: the replay and its tickets in order."""

    replay: Replay
    items: list[ReplayItem]


def replay_get(*, replay_id: int) -> ReplayDetail | None:
    replay = Replay.objects.filter(pk=replay_id).select_related("workflow", "version", "created_by").first()
    if replay is None:
        return None
    items = replay.items.select_related("ticket", "case").defer("ticket__raw_payload")
    return ReplayDetail(replay, list(items.order_by("position")))


# --- The API's reads ------------------------------------------------------------------------------------------


RUN_ORDER = ("-created_at", "-id")  # the API's run list, newest first (keyset pages on the same order)
ACTION_ORDER = ("created_at", "id")  # the API's action list, oldest first


def agent_run_list(*, ticket: int | None = None, status: str | None = None) -> QuerySet[AgentRun]:
    """Runs, newest first, optionally of one ticket or in one status."""
    runs = AgentRun.objects.select_related("workflow").order_by(*RUN_ORDER)
    if ticket is not None:
        runs = runs.filter(ticket_id=ticket)
    if status:
        runs = runs.filter(status=status)
    return runs


def agent_run_detail_queryset() -> QuerySet[AgentRun]:
    """Runs with their steps in order, for reading one in full."""
    return AgentRun.objects.select_related("workflow").prefetch_related(
        Prefetch("steps", queryset=Step.objects.order_by("index"))
    )


def proposed_action_list(*, status: str | None = None, run: int | None = None) -> QuerySet[ProposedAction]:
    """Proposed actions, oldest first, optionally in one status or of one run."""
    actions = ProposedAction.objects.select_related("decided_by").order_by(*ACTION_ORDER)
    if status:
        actions = actions.filter(status=status)
    if run is not None:
        actions = actions.filter(run_id=run)
    return actions


def workflow_list_with_evidence() -> list[tuple[Workflow, Evidence]]:
    """Every workflow with its evidence. Admins curate a handful: a fixed number of queries either way."""
    workflows = list(Workflow.objects.order_by("name", "id"))
    evidence = workflow_evidence_many(workflow_ids=[workflow.pk for workflow in workflows])
    return [(workflow, evidence[workflow.pk]) for workflow in workflows]
