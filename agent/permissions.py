"""Who may decide on the agent's work: the checks every agent service makes before it writes."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from agentconsole.errors import PermissionDeniedError
from agentconsole.roles import is_admin, is_reviewer

NOT_A_REVIEWER = "Only reviewers and admins decide on proposed actions."
NOT_AN_ADMIN = "Only admins change a workflow's phase or stop autonomy."


def reviewer_required(user: AbstractBaseUser) -> None:
    if not is_reviewer(user):
        raise PermissionDeniedError(NOT_A_REVIEWER)


def admin_required(user: AbstractBaseUser) -> None:
    if not is_admin(user):
        raise PermissionDeniedError(NOT_AN_ADMIN)
