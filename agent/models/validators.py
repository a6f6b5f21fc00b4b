"""Field validators of the workflow. Migrations name them as agent.models.validate_*, which the package keeps."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def validate_tool_limits(value: object) -> None:
    from agent.limits import limits_errors

    if errors := limits_errors(value):
        raise ValidationError(errors)


def validate_tool_names(value: object) -> None:
    from agent.tools import tool_names_errors

    if errors := tool_names_errors(value):
        raise ValidationError(errors)


def validate_playbook(value: object) -> None:
    from agent.llm.offline import playbook_errors

    if errors := playbook_errors(value):
        raise ValidationError(errors)
