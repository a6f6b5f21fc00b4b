from __future__ import annotations

import statistics
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q

from agent.models import AgentRun, ProposedAction, Rating, Step, Workflow
from tickets.models import Ticket


def workflow_match(*, ticket: Ticket) -> Workflow | None:
    """The enabled workflow for a ticket: a tag match wins over a keyword match; ties go to the oldest."""
    workflows = list(Workflow.objects.filter(enabled=True).order_by("created_at", "id"))
    tags = set(ticket.tags)
    for workflow in workflows:
        if tags.intersection(workflow.match_tags):
            return workflow
    text = f"{ticket.subject}\n{ticket.description}".lower()
    for workflow in workflows:
        if any(keyword.lower() in text for keyword in workflow.match_keywords if keyword.strip()):
            return workflow
    return None


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


def workflow_evidence(*, workflow: Workflow) -> Evidence:
    """Aggregates over the workflow's runs in a fixed number of queries, whatever their number."""
    human = ProposedAction.objects.filter(run__workflow=workflow, decided_by__isnull=False)
    counts = human.aggregate(
        reviewed=Count("id"),
        approved_unedited=Count("id", filter=~Q(status=ProposedAction.Status.REJECTED) & Q(original_args__isnull=True)),
        approved_edited=Count("id", filter=~Q(status=ProposedAction.Status.REJECTED) & Q(original_args__isnull=False)),
        rejected=Count("id", filter=Q(status=ProposedAction.Status.REJECTED)),
    )
    verification = ProposedAction.objects.filter(run__workflow=workflow).aggregate(
        passed=Count("id", filter=Q(verification=ProposedAction.Verification.PASSED)),
        failed=Count("id", filter=Q(verification=ProposedAction.Verification.FAILED)),
    )
    ratings = Rating.objects.filter(Q(action__run__workflow=workflow) | Q(step__run__workflow=workflow)).aggregate(
        up=Count("id", filter=Q(value=Rating.Value.UP)), down=Count("id", filter=Q(value=Rating.Value.DOWN))
    )
    durations = sorted(
        (finished - created).total_seconds()
        for created, finished in AgentRun.objects.filter(
            workflow=workflow, status=AgentRun.Status.COMPLETED, finished_at__isnull=False
        ).values_list("created_at", "finished_at")
    )
    reasons = list(
        human.filter(status=ProposedAction.Status.REJECTED)
        .order_by("-decided_at")
        .values_list("decision_reason", flat=True)[:5]
    )
    return Evidence(
        reviewed=counts["reviewed"],
        approved_unedited=counts["approved_unedited"],
        approved_edited=counts["approved_edited"],
        rejected=counts["rejected"],
        rejection_reasons=reasons,
        verifications_passed=verification["passed"],
        verifications_failed=verification["failed"],
        thumbs_up=ratings["up"],
        thumbs_down=ratings["down"],
        resolved_runs=len(durations),
        median_resolution_seconds=statistics.median(durations) if durations else None,
    )


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
