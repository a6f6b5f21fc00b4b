"""The agent app's models, one module per topic. Django finds them here; code imports them from `agent.models`."""

from __future__ import annotations

from agent.models.company import ApiOperation, ToolContract
from agent.models.proof import RegressionCase, Replay, ReplayItem, WorkflowVersion
from agent.models.reviews import Notification, Rating
from agent.models.rollups import LatencyWeek, UsageWeek
from agent.models.runs import AgentRun, ProposedAction, Step
from agent.models.validators import validate_playbook, validate_tool_limits, validate_tool_names
from agent.models.workflows import ConfigPatch, Runbook, Workflow

__all__ = [
    "AgentRun",
    "ApiOperation",
    "ConfigPatch",
    "LatencyWeek",
    "Notification",
    "ProposedAction",
    "Rating",
    "RegressionCase",
    "Replay",
    "ReplayItem",
    "Runbook",
    "Step",
    "ToolContract",
    "UsageWeek",
    "Workflow",
    "WorkflowVersion",
    "validate_playbook",
    "validate_tool_limits",
    "validate_tool_names",
]
