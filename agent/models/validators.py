"""Field validators of the workflow. Migrations name them as agent.models.validate_*, which the package keeps."""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import ValidationError


def validate_tool_limits(value: object) -> None:
    from agent.limits import limits_errors

    if errors := limits_errors(value):
        raise ValidationError(errors)


def validate_tool_names(value: object) -> None:
    # The catalogue reads models (the company's contracts, the runbooks a tool searches), so this module cannot import
    # it: the agent app, which composes everything, checks the names (AgentConfig.tool_names_errors, agent/apps.py).
    if errors := apps.get_app_config("agent").tool_names_errors(value):
        raise ValidationError(errors)


def validate_playbook(value: object) -> None:
    from agent.playbook import playbook_errors

    if errors := playbook_errors(value):
        raise ValidationError(errors)
