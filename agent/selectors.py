from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Q, Window
from django.db.models.functions import Coalesce, RowNumber

from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
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


@dataclass(frozen=True)
class Evidence:
    """What a workflow has shown so far: the facts an admin promotes or demotes it on."""

    reviewed: int  # proposals a human approved or rejected
    approved_unedited: int
    approved_edited: int
    rejected: int
    rejection_reasons: list[str]
    verifications_passed: int
    verifications_failed: int
    thumbs_up: int
    thumbs_down: int
    resolved_runs: int
    median_resolution_seconds: float | None

    @property
    def unedited_approval_rate(self) -> float | None:
        return self.approved_unedited / self.reviewed if self.reviewed else None

    @property
    def edit_rate(self) -> float | None:
        return self.approved_edited / self.reviewed if self.reviewed else None

    @property
    def verification_pass_rate(self) -> float | None:
        total = self.verifications_passed + self.verifications_failed
        return self.verifications_passed / total if total else None

    @property
    def thumbs_up_ratio(self) -> float | None:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else None


REJECTION_REASONS_SHOWN = 5


def _grouped(rows: Iterable[dict], key: str) -> dict[int, dict]:
    return {row[key]: row for row in rows}


def workflow_evidence_many(*, workflow_ids: list[int]) -> dict[int, Evidence]:
    """The evidence of many workflows in five queries in all, whatever the number of workflows and runs."""
    if not workflow_ids:
        return {}
    human = ProposedAction.objects.filter(run__workflow__in=workflow_ids, decided_by__isnull=False)
    not_rejected = ~Q(status=ProposedAction.Status.REJECTED)
    decisions = _grouped(
        human.values("run__workflow")
        .order_by()
        .annotate(
            reviewed=Count("id"),
            approved_unedited=Count("id", filter=not_rejected & Q(original_args__isnull=True)),
            approved_edited=Count("id", filter=not_rejected & Q(original_args__isnull=False)),
            rejected=Count("id", filter=Q(status=ProposedAction.Status.REJECTED)),
        ),
        "run__workflow",
    )
    verifications = _grouped(
        ProposedAction.objects.filter(run__workflow__in=workflow_ids)
        .values("run__workflow")
        .order_by()
        .annotate(
            passed=Count("id", filter=Q(verification=ProposedAction.Verification.PASSED)),
            failed=Count("id", filter=Q(verification=ProposedAction.Verification.FAILED)),
        ),
        "run__workflow",
    )
    ratings = _grouped(
        Rating.objects.filter(Q(action__run__workflow__in=workflow_ids) | Q(step__run__workflow__in=workflow_ids))
        .annotate(wf=Coalesce("action__run__workflow", "step__run__workflow"))
        .values("wf")
        .order_by()
        .annotate(up=Count("id", filter=Q(value=Rating.Value.UP)), down=Count("id", filter=Q(value=Rating.Value.DOWN))),
        "wf",
    )
    durations: dict[int, list[float]] = defaultdict(list)
    for workflow_id, created, finished in AgentRun.objects.filter(
        workflow__in=workflow_ids, status=AgentRun.Status.COMPLETED, finished_at__isnull=False
    ).values_list("workflow_id", "created_at", "finished_at"):
        durations[workflow_id].append((finished - created).total_seconds())
    reasons: dict[int, list[str]] = defaultdict(list)
    for workflow_id, reason in (
        human.filter(status=ProposedAction.Status.REJECTED)
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("run__workflow")], order_by=[F("decided_at").desc(), F("id").desc()]
            )
        )
        .filter(rank__lte=REJECTION_REASONS_SHOWN)
        .order_by("run__workflow", "rank")
        .values_list("run__workflow", "decision_reason")
    ):
        reasons[workflow_id].append(reason)
    evidence = {}
    for workflow_id in workflow_ids:
        counts = decisions.get(workflow_id, {})
        checks = verifications.get(workflow_id, {})
        thumbs = ratings.get(workflow_id, {})
        times = durations.get(workflow_id, [])
        evidence[workflow_id] = Evidence(
            reviewed=counts.get("reviewed", 0),
            approved_unedited=counts.get("approved_unedited", 0),
            approved_edited=counts.get("approved_edited", 0),
            rejected=counts.get("rejected", 0),
            rejection_reasons=reasons.get(workflow_id, []),
            verifications_passed=checks.get("passed", 0),
            verifications_failed=checks.get("failed", 0),
            thumbs_up=thumbs.get("up", 0),
            thumbs_down=thumbs.get("down", 0),
            resolved_runs=len(times),
            median_resolution_seconds=statistics.median(times) if times else None,
        )
    return evidence


def workflow_evidence(*, workflow: Workflow) -> Evidence:
    return workflow_evidence_many(workflow_ids=[workflow.pk])[workflow.pk]


def autonomy_unmet_criteria(*, evidence: Evidence) -> list[str]:
    """Why a workflow may not yet run alone; empty when it may."""
    unmet = []
    if evidence.reviewed < settings.AUTONOMY_MIN_REVIEWED:
        unmet.append(f"{evidence.reviewed} reviewed proposals, {settings.AUTONOMY_MIN_REVIEWED} needed")
    rate = evidence.unedited_approval_rate or 0.0
    if rate < settings.AUTONOMY_MIN_UNEDITED_APPROVAL_RATE:
        unmet.append(f"{rate:.0%} approved unedited, {settings.AUTONOMY_MIN_UNEDITED_APPROVAL_RATE:.0%} needed")
    if evidence.verifications_failed > settings.AUTONOMY_MAX_FAILED_VERIFICATIONS:
        unmet.append(
            f"{evidence.verifications_failed} failed verifications, at most "
            f"{settings.AUTONOMY_MAX_FAILED_VERIFICATIONS} allowed"
        )
    return unmet
