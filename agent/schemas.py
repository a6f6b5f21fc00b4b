from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema

from agent.models import AgentRun, ProposedAction, Step, Workflow

# One enum per field (Django's choices classes all share the name "Status"): a Literal is inlined where used.
RunStatusIn = Literal[tuple(AgentRun.Status.values)]  # type: ignore[valid-type]
ActionStatusIn = Literal[tuple(ProposedAction.Status.values)]  # type: ignore[valid-type]
PhaseIn = Literal[tuple(Workflow.Phase.values)]  # type: ignore[valid-type]
RunOutcomeIn = Literal[tuple(AgentRun.Outcome.values)]  # type: ignore[valid-type]
# ids in the database are bigints: a larger number can name nothing, and is refused as a validation error.
IdIn = Annotated[int, Field(ge=1, le=2**63 - 1)]


class RunFilterIn(Schema):
    ticket: IdIn | None = Field(None, description="A ticket id.")
    status: RunStatusIn | None = None  # type: ignore[valid-type]


class StepOut(Schema):
    id: int
    index: int
    turn: int
    kind: str
    content: str
    tool: str = Field(..., alias="tool_name")
    input: Any = Field(None, alias="tool_input")
    output: Any = Field(None, alias="tool_output")
    latency_ms: int | None
    tokens_in: int
    tokens_out: int
    created_at: datetime


class RunOut(Schema):
    id: int
    ticket_id: int
    workflow: str | None

    @staticmethod
    def resolve_workflow(run: AgentRun) -> str | None:
        return run.workflow.slug if run.workflow else None

    phase: str
    matched_on: str = Field(description="What chose the workflow: tags, keywords (runs at most in triage), or empty.")
    trigger: str
    status: str
    status_reason: str
    outcome: str
    engine: str
    turns: int
    tokens_in: int
    tokens_out: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetailOut(RunOut):
    steps: list[StepOut]

    @staticmethod
    def resolve_steps(run: AgentRun) -> list[Step]:
        return list(run.steps.all())


class ActionFilterIn(Schema):
    status: ActionStatusIn | None = None  # type: ignore[valid-type]
    run: IdIn | None = Field(None, description="A run id.")


class ActionOut(Schema):
    id: int
    run_id: int
    step_id: int | None
    tool: str
    args: dict[str, Any]
    original_args: dict[str, Any] | None
    rationale: str
    risk: str
    status: str
    retry_of_id: int | None = Field(description="The run's first call with the same tool and arguments, if any.")
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str
    execution_result: dict[str, Any] | None
    executed_at: datetime | None
    verification: str
    verification_result: dict[str, Any] | None
    created_at: datetime

    @staticmethod
    def resolve_decided_by(action: ProposedAction) -> str | None:
        return action.decided_by.get_username() if action.decided_by else None


class ActionApproveIn(Schema):
    args: dict[str, Any] | None = Field(None, description="Edited arguments; leave out to approve the model's.")


class ActionRejectIn(Schema):
    reason: str


class ActionRespondIn(Schema):
    feedback: str = Field(..., description="What the agent should continue from; the call does not run.")


class RunTakeOverIn(Schema):
    reason: str = ""


class RunCloseIn(Schema):
    outcome: RunOutcomeIn  # type: ignore[valid-type]
    note: str = ""


class RatingIn(Schema):
    value: Literal[1, -1]
    comment: str = ""


class RatingOut(Schema):
    id: int
    value: int
    comment: str
    action_id: int | None
    step_id: int | None
    updated_at: datetime


class EvidenceOut(Schema):
    reviewed: int
    approved_unedited: int
    approved_edited: int
    rejected: int
    rejection_reasons: list[str]
    verifications_passed: int
    verifications_failed: int
    thumbs_up: int
    thumbs_down: int
    resolved_runs: int
    responded: int
    execution_failed: int
    drafted_runs: int
    median_resolution_seconds: float | None
    unedited_approval_rate: float | None
    edit_rate: float | None
    verification_pass_rate: float | None
    thumbs_up_ratio: float | None


class WorkflowOut(Schema):
    slug: str
    name: str
    description: str
    phase: str
    enabled: bool
    tools: list[str]  # what its model sees; empty: every tool
    preapproved_tools: list[str]
    tool_limits: dict[str, Any]
    evidence: EvidenceOut  # of the version in force
    unmet_autonomy_criteria: list[str]
    version: int | None  # the version in force; null before its first run (or after a change, until the next run)
    next_phase: str  # "" when autonomous
    unmet_promotion_criteria: list[str]  # what a promotion to next_phase still needs, the regression suite included


class WorkflowPhaseIn(Schema):
    phase: PhaseIn  # type: ignore[valid-type]
    reason: str
    override: bool = False


class AutonomyStopIn(Schema):
    reason: str


class AutonomyStopOut(Schema):
    stopped_workflows: int
