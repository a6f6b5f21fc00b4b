"""The two roles of the console. Group names are fixed: a data migration creates them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

REVIEWERS = "reviewers"
ADMINS = "admins"


def _groups(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_console_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._console_groups = cached  # type: ignore[union-attr]
    return cached


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    return ADMINS in _groups(user)


def is_reviewer(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins can do everything reviewers can."""
    return bool(_groups(user) & {REVIEWERS, ADMINS})
