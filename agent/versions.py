"""Workflow versions: the content a run runs with, frozen, so evidence, suites and replays are about exactly it.

A version is runbook + playbook + tool set + effect contracts + model id + system prompt. Its phase, pre-approved
tools and limits are not part of it: they decide what may run alone, not what the agent does, and are audited as
policy (agent.services.workflow_save). Versions are made lazily, when a run starts, a workflow is saved, a phase
changes or a replay is asked for, whenever the content in force differs from the latest version's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery

from agent.catalogue import workflow_tools
from agent.llm.offline import OfflineEngine
from agent.models import AgentRun, Workflow, WorkflowVersion
from agent.prompts import ESCALATE_SPEC, SYSTEM_PROMPT
from agent.tools.base import Risk
from audit.services import audit_event_record

if TYPE_CHECKING:
    from agent.selectors.evidence import Evidence


@dataclass(frozen=True)
class VersionContent:
    runbook: str
    playbook: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    contracts: dict[str, Any]
    engine: str
    prompt: str

    @property
    def content_hash(self) -> str:
        canonical = json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# A tool's spec is the same dict while it stays the same (Tool.spec): its hash is kept with it (the dict held too, so
# its id is not reused), and a run that starts hashes no spec again.
_spec_shas: dict[int, tuple[dict[str, Any], str]] = {}


def _spec_sha(spec: dict[str, Any]) -> str:
    held = _spec_shas.get(id(spec))
    if held is not None and held[0] is spec:
        return held[1]
    sha = _sha(spec)
    if len(_spec_shas) >= 1024:  # specs rebuilt each time (none of ours) would otherwise pile up
        _spec_shas.clear()
    _spec_shas[id(spec)] = (spec, sha)
    return sha


def engine_name() -> str:
    """The engine in force, named as AgentRun.engine names it (without building a Bedrock client)."""
    if settings.AGENT_LLM_PROVIDER == "bedrock":
        return f"bedrock:{settings.BEDROCK_MODEL_ID}"
    return OfflineEngine.name


def tool_set(workflow: Workflow) -> list[dict[str, Any]]:
    """The tools a run of this workflow is offered (its own tool list, or every tool when it names none), each
    identified by the hash of the spec the model sees."""
    tools = [
        {"name": name, "risk": str(tool.risk), "spec_sha256": _spec_sha(tool.spec())}
        for name, tool in sorted(workflow_tools(workflow).items())
    ]
    return [*tools, {"name": ESCALATE_SPEC["name"], "risk": "escalation", "spec_sha256": _spec_sha(ESCALATE_SPEC)}]


def contracts_in_use(workflow: Workflow) -> dict[str, Any]:
    """How each of the workflow's writes proves its effect: the stored effect contract (id and version) where the
    tool comes from the company's configuration, and the verifier and state read the tool declares."""
    return {
        name: {
            "contract_id": getattr(tool, "contract_id", None),
            "contract_version": getattr(tool, "contract_version", None),
            "verify": tool.verify_summary,
            "reads_state": tool.can_read_current,
            "verifier": tool.has_verifier,
        }
        for name, tool in sorted(workflow_tools(workflow).items())
        if tool.risk == Risk.WRITE
    }


def version_content(workflow: Workflow) -> VersionContent:
    return VersionContent(
        runbook=workflow.runbook,
        playbook=list(workflow.playbook or []),
        tools=tool_set(workflow),
        contracts=contracts_in_use(workflow),
        engine=engine_name(),
        prompt=SYSTEM_PROMPT,
    )


def workflow_version_latest(*, workflow: Workflow) -> WorkflowVersion | None:
    return WorkflowVersion.objects.filter(workflow=workflow).order_by("-number").first()


_LATEST = "_latest_version"


def workflow_version_latest_hold(workflow: Workflow, version: WorkflowVersion | None) -> None:
    """The workflow's latest version, read with a run's claim: the next workflow_version_in_force answers from it
    (once; workflow_version_ensure always reads under the workflow's lock)."""
    workflow.__dict__[_LATEST] = version


def workflow_version_in_force(*, workflow: Workflow) -> tuple[WorkflowVersion | None, bool]:
    """The latest version and whether it is what would run now (False: the next run makes a new version). A read."""
    if _LATEST in workflow.__dict__:
        latest = workflow.__dict__.pop(_LATEST)
    else:
        latest = workflow_version_latest(workflow=workflow)
    return latest, latest is not None and latest.content_hash == version_content(workflow).content_hash


@transaction.atomic
def workflow_version_ensure(*, workflow: Workflow) -> WorkflowVersion:
    """The version of the content in force now, written if it is new (never changing an older one). A new version
    of a workflow with a regression suite gets a suite run, enqueued when this transaction commits."""
    Workflow.objects.select_for_update().filter(pk=workflow.pk).first()  # one writer of version numbers at a time
    content = version_content(workflow)
    latest = workflow_version_latest(workflow=workflow)
    if latest is not None and latest.content_hash == content.content_hash:
        return latest
    version = WorkflowVersion(
        workflow=workflow,
        number=(latest.number + 1) if latest else 1,
        content_hash=content.content_hash,
        **content.__dict__,
    )
    version.full_clean()
    version.save()
    audit_event_record(
        verb="workflow.version_created",
        obj=workflow,
        payload={"number": version.number, "content_hash": version.content_hash, "engine": version.engine},
    )
    from agent.suites import suite_run_start

    suite_run_start(version=version, user=None)
    return version


def workflow_version_to_pin(*, run: AgentRun) -> WorkflowVersion | None:
    """The version a starting run is to pin: None when it has one already, or has no workflow."""
    if run.version_id is not None or run.workflow is None:
        return None
    # Most runs start on content that already has its version: one read, no lock. New content is written under
    # the workflow's lock (workflow_version_ensure decides again there).
    version, current = workflow_version_in_force(workflow=run.workflow)
    if not current or version is None:
        version = workflow_version_ensure(workflow=run.workflow)
    return version


def agent_run_pin_version(*, run: AgentRun) -> AgentRun:
    """Record the version a run runs, when it starts. A run without a workflow has no version."""
    version = workflow_version_to_pin(run=run)
    if version is None:
        return run
    AgentRun.objects.filter(pk=run.pk, version__isnull=True).update(version=version)
    run.version = version
    return run


def version_changes(*, older: WorkflowVersion | None, newer: WorkflowVersion) -> list[str]:
    """What changed from one version to the next, in words, for the versions list."""
    if older is None:
        return ["first version"]
    names = {
        "runbook": "runbook",
        "playbook": "playbook",
        "tools": "tool set",
        "contracts": "contracts",
        "engine": "model",
        "prompt": "prompt",
    }
    return [label for field, label in names.items() if getattr(older, field) != getattr(newer, field)]


PHASE_ORDER = (Workflow.Phase.SHADOW, Workflow.Phase.TRIAGE, Workflow.Phase.AUTONOMOUS)


def next_phase(phase: str) -> str:
    """The phase a promotion leads to, or "" from the last."""
    index = PHASE_ORDER.index(phase) if phase in PHASE_ORDER else len(PHASE_ORDER) - 1
    return PHASE_ORDER[index + 1] if index + 1 < len(PHASE_ORDER) else ""


def phase_unmet(*, evidence: Evidence, phase: str) -> list[str]:
    """The evidence criteria of a promotion to `phase` that `evidence` does not meet."""
    from agent.selectors.evidence import autonomy_unmet_criteria, triage_unmet_criteria

    if phase == Workflow.Phase.AUTONOMOUS:
        return autonomy_unmet_criteria(evidence=evidence)
    if phase == Workflow.Phase.TRIAGE:
        return triage_unmet_criteria(evidence=evidence)
    return []


def promotion_unmet(*, version: WorkflowVersion, phase: str) -> list[str]:
    """Why a workflow may not be promoted to `phase` on the evidence of the version in force, and its suite."""
    from agent.selectors.evidence import version_evidence_many
    from agent.suites import suite_unmet

    if phase not in (Workflow.Phase.TRIAGE, Workflow.Phase.AUTONOMOUS):
        return []
    evidence = version_evidence_many(version_ids=[version.pk])[version.pk]
    return phase_unmet(evidence=evidence, phase=phase) + suite_unmet(version=version)


def is_promotion(*, current: str, target: str) -> bool:
    return target in PHASE_ORDER and current in PHASE_ORDER and PHASE_ORDER.index(target) > PHASE_ORDER.index(current)


def versions_in_force(*, workflows: list[Workflow]) -> dict[int, tuple[WorkflowVersion | None, bool]]:
    """Each workflow's latest version and whether it is the content in force (one query). A read: a version that
    does not exist yet is made when the next run starts."""
    latest = Subquery(WorkflowVersion.objects.filter(workflow=OuterRef("pk")).order_by("-number").values("pk")[:1])
    ids = dict(Workflow.objects.filter(pk__in=[w.pk for w in workflows]).annotate(v=latest).values_list("pk", "v"))
    versions = {v.pk: v for v in WorkflowVersion.objects.filter(pk__in=[v for v in ids.values() if v])}
    found = {}
    for workflow in workflows:
        version = versions.get(ids.get(workflow.pk))
        current = version is not None and version.content_hash == version_content(workflow).content_hash
        found[workflow.pk] = (version, current)
    return found


@dataclass(frozen=True)
class VersionRow:
    version: WorkflowVersion
    changes: list[str]
    evidence: Evidence
    suite: Any  # the latest suite run (a Replay) or None


def version_rows(*, workflow: Workflow) -> list[VersionRow]:
    """Every version of a workflow, newest first, with what changed, its evidence and its latest suite run."""
    from django.db.models import Count, Q

    from agent.models import Replay, ReplayItem
    from agent.selectors.evidence import version_evidence_many

    versions = list(WorkflowVersion.objects.filter(workflow=workflow).order_by("number"))
    evidence = version_evidence_many(version_ids=[v.pk for v in versions])
    suites: dict[int, Any] = {}
    # skipped: cases with no recorded run to replay; they block promotion, so such a suite is not "passed".
    skipped = Count("items", filter=Q(items__case_result=ReplayItem.CaseResult.SKIPPED))
    runs = Replay.objects.filter(version__in=versions, kind=Replay.Kind.SUITE).annotate(skipped=skipped)
    for replay in runs.order_by("created_at", "id"):
        suites[replay.version_id] = replay
    rows = []
    for older, version in zip([None, *versions], versions, strict=False):
        rows.append(VersionRow(version, version_changes(older=older, newer=version), evidence[version.pk],
                               suites.get(version.pk)))  # fmt: skip
    return rows[::-1]
