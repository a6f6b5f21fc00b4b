"""The evidence a workflow (or one of its versions) has earned, and the criteria a promotion must meet."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber

from agent.aggregates import Percentile, seconds_between
from agent.models import AgentRun, ProposedAction, Rating, Workflow


@dataclass(frozen=True)
class Evidence:
    """What a workflow has shown so far: the facts an admin promotes or demotes it on."""

    reviewed: int  # proposals a human decided: approved, rejected, answered with feedback, or approved and failed
    approved_unedited: int  # approved as proposed, and not failed when it ran
    approved_edited: int
    rejected: int
    rejection_reasons: list[str]
    verifications_passed: int
    verifications_failed: int
    thumbs_up: int
    thumbs_down: int
    resolved_runs: int  # completed outside shadow: a shadow run only drafts, it resolves nothing
    median_resolution_seconds: float | None
    responded: int = 0
    execution_failed: int = 0  # approved by a human, then the call itself failed
    drafted_runs: int = 0  # shadow runs that completed with their private note

    @classmethod
    def empty(cls) -> Evidence:
        """A version nothing has run yet."""
        return cls(0, 0, 0, 0, [], 0, 0, 0, 0, 0, None)

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

# Each evidence number, once: the counts below and the tickets view's filter behind each number use these, so a
# number and the tickets it links to cannot disagree.
_HUMAN = Q(decided_by__isnull=False)
_APPROVED = Q(status__in=[ProposedAction.Status.APPROVED, ProposedAction.Status.EXECUTED])
# Approved, then it did not work: the call failed, its outcome is unknown, or re-reading state disproved it. Such a
# call is never counted as a good approval, edited or not.
_FAILED_TO_RUN = Q(status__in=[ProposedAction.Status.FAILED, ProposedAction.Status.UNCERTAIN]) | Q(
    verification=ProposedAction.Verification.FAILED
)
EVIDENCE_ACTION_FILTERS: dict[str, Q] = {
    "reviewed": _HUMAN & ~Q(status=ProposedAction.Status.WITHDRAWN),
    "approved_unedited": _HUMAN & _APPROVED & ~_FAILED_TO_RUN & Q(original_args__isnull=True),
    "approved_edited": _HUMAN & _APPROVED & ~_FAILED_TO_RUN & Q(original_args__isnull=False),
    "rejected": _HUMAN & Q(status=ProposedAction.Status.REJECTED),
    "responded": _HUMAN & Q(status=ProposedAction.Status.RESPONDED),
    "execution_failed": _HUMAN & _FAILED_TO_RUN,
    "verifications_passed": Q(verification=ProposedAction.Verification.PASSED),
    "verifications_failed": Q(verification=ProposedAction.Verification.FAILED),
}
EVIDENCE_RATING_FILTERS: dict[str, Q] = {
    "thumbs_up": Q(value=Rating.Value.UP),
    "thumbs_down": Q(value=Rating.Value.DOWN),
}
EVIDENCE_RUN_FILTERS: dict[str, Q] = {
    "resolved_runs": Q(status=AgentRun.Status.COMPLETED) & ~Q(phase=Workflow.Phase.SHADOW),
    "drafted_runs": Q(status=AgentRun.Status.COMPLETED, phase=Workflow.Phase.SHADOW),
}
EVIDENCE_KEYS = (*EVIDENCE_ACTION_FILTERS, *EVIDENCE_RATING_FILTERS, *EVIDENCE_RUN_FILTERS)


def evidence_ticket_filter(*, key: str, workflow_id: int | None, version_id: int | None = None) -> Q:
    """A filter on Ticket: the tickets behind one evidence number (of one workflow version, one workflow, or of
    all)."""
    group, group_id = ("version", version_id) if version_id else ("workflow", workflow_id)

    def scope(prefix: str) -> Q:
        return Q(**{f"{prefix}{group}": group_id}) if group_id else Q()

    if key in EVIDENCE_ACTION_FILTERS:
        rows = ProposedAction.objects.filter(EVIDENCE_ACTION_FILTERS[key], scope("run__"), run__ticket=OuterRef("pk"))
    elif key in EVIDENCE_RATING_FILTERS:
        by_action = Q(action__run__ticket=OuterRef("pk")) & scope("action__run__")
        by_step = Q(step__run__ticket=OuterRef("pk")) & scope("step__run__")
        rows = Rating.objects.filter(EVIDENCE_RATING_FILTERS[key], by_action | by_step)
    elif key in EVIDENCE_RUN_FILTERS:
        rows = AgentRun.objects.filter(EVIDENCE_RUN_FILTERS[key], scope(""), ticket=OuterRef("pk"))
    else:
        raise ValueError(key)
    return Q(Exists(rows))


def _grouped(rows: Iterable[dict], key: str) -> dict[int, dict]:
    return {row[key]: row for row in rows}


def _resolution_times(group: str, ids: list[int]) -> tuple[dict[int, tuple[int, float | None]], dict[int, int]]:
    """Per workflow or version: (resolved runs, their median seconds to complete) and the shadow runs that drafted.
    One grouped query in PostgreSQL; in Python on SQLite (the demo)."""
    completed = AgentRun.objects.filter(**{f"{group}__in": ids}, status=AgentRun.Status.COMPLETED)
    durations: dict[int, tuple[int, float | None]] = {}
    drafted: dict[int, int] = defaultdict(int)
    if connection.vendor == "postgresql":
        resolved = ~Q(phase=Workflow.Phase.SHADOW) & Q(finished_at__isnull=False)
        for row in (
            completed.values(group)
            .order_by()
            .annotate(
                drafted=Count("id", filter=Q(phase=Workflow.Phase.SHADOW)),
                resolved=Count("id", filter=resolved),
                median=Percentile(seconds_between("created_at", "finished_at"), 0.5, filter=resolved),
            )
        ):
            durations[row[group]] = (row["resolved"], row["median"])
            drafted[row[group]] = row["drafted"]
        return durations, drafted
    times: dict[int, list[float]] = defaultdict(list)
    found = completed.values_list(f"{group}_id", "phase", "created_at", "finished_at")
    for group_id, phase, created, finished in found:
        if phase == Workflow.Phase.SHADOW:
            drafted[group_id] += 1
        elif finished is not None:
            times[group_id].append((finished - created).total_seconds())
    return {g: (len(t), statistics.median(t)) for g, t in times.items()}, drafted


def workflow_evidence_many(*, workflow_ids: list[int]) -> dict[int, Evidence]:
    """The evidence of many workflows over their whole life, in a fixed number of queries."""
    return _evidence_many(group="workflow", ids=workflow_ids)


def version_evidence_many(*, version_ids: list[int]) -> dict[int, Evidence]:
    """The evidence of many workflow versions: only what runs of each version did. Promotion is gated on this."""
    return _evidence_many(group="version", ids=version_ids)


def _evidence_many(*, group: str, ids: list[int]) -> dict[int, Evidence]:
    """Evidence grouped by the runs' workflow or version, in a fixed number of queries whatever the number of runs.
    The one place evidence is computed: the workflows page, the API and the promotion gate all read it."""
    if not ids:
        return {}
    by_run = f"run__{group}"
    decisions = _grouped(
        ProposedAction.objects.filter(**{f"{by_run}__in": ids})
        .values(by_run)
        .order_by()
        .annotate(**{key: Count("id", filter=condition) for key, condition in EVIDENCE_ACTION_FILTERS.items()}),
        by_run,
    )
    # Ratings of proposals and of drafted steps, one grouped query each: an OR across both joins scanned every
    # step and action.
    ratings: dict[int, dict] = defaultdict(lambda: defaultdict(int))
    for via in (f"action__{by_run}", f"step__{by_run}"):
        for row in (
            Rating.objects.filter(**{f"{via}__in": ids})
            .values(via)
            .order_by()
            .annotate(**{key: Count("id", filter=condition) for key, condition in EVIDENCE_RATING_FILTERS.items()})
        ):
            for key in EVIDENCE_RATING_FILTERS:
                ratings[row[via]][key] += row[key]
    durations, drafted = _resolution_times(group, ids)
    reasons: dict[int, list[str]] = defaultdict(list)
    for group_id, reason in (
        ProposedAction.objects.filter(EVIDENCE_ACTION_FILTERS["rejected"], **{f"{by_run}__in": ids})
        .annotate(rank=Window(RowNumber(), partition_by=[F(by_run)], order_by=[F("decided_at").desc(), F("id").desc()]))
        .filter(rank__lte=REJECTION_REASONS_SHOWN)
        .order_by(by_run, "rank")
        .values_list(by_run, "decision_reason")
    ):
        reasons[group_id].append(reason)
    evidence = {}
    for group_id in ids:
        counts = decisions.get(group_id, {})
        thumbs = ratings.get(group_id, {})
        resolved, median = durations.get(group_id, (0, None))
        evidence[group_id] = Evidence(
            reviewed=counts.get("reviewed", 0),
            approved_unedited=counts.get("approved_unedited", 0),
            approved_edited=counts.get("approved_edited", 0),
            rejected=counts.get("rejected", 0),
            responded=counts.get("responded", 0),
            execution_failed=counts.get("execution_failed", 0),
            rejection_reasons=reasons.get(group_id, []),
            verifications_passed=counts.get("verifications_passed", 0),
            verifications_failed=counts.get("verifications_failed", 0),
            thumbs_up=thumbs.get("thumbs_up", 0),
            thumbs_down=thumbs.get("thumbs_down", 0),
            resolved_runs=resolved,
            drafted_runs=drafted.get(group_id, 0),
            median_resolution_seconds=median,
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


def triage_unmet_criteria(*, evidence: Evidence) -> list[str]:
    """Why a shadow workflow may not yet act in triage: reviewers have not rated enough of its drafts, or not
    well enough. Empty when it may."""
    unmet = []
    rated = evidence.thumbs_up + evidence.thumbs_down
    if rated < settings.TRIAGE_MIN_RATINGS:
        unmet.append(f"{rated} rated drafts, {settings.TRIAGE_MIN_RATINGS} needed")
    ratio = evidence.thumbs_up_ratio or 0.0
    if rated and ratio < settings.TRIAGE_MIN_THUMBS_UP_RATE:
        unmet.append(f"{ratio:.0%} thumbs up, {settings.TRIAGE_MIN_THUMBS_UP_RATE:.0%} needed")
    return unmet
