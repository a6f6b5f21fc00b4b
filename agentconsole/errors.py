"""The project's one error base. Domain errors subclass it; services raise them; the API maps them to 4xx."""

from __future__ import annotations


class ApplicationError(Exception):
    """An expected failure with a message safe to show to the caller."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotAuthenticated(ApplicationError):
    status_code = 401


class PermissionDeniedError(ApplicationError):
    status_code = 403


class NotFoundError(ApplicationError):
    status_code = 404


class ConflictError(ApplicationError):
    status_code = 409


class PayloadTooLarge(ApplicationError):
    status_code = 413


class InvalidTransition(ConflictError):
    """A status change the lifecycle does not allow."""
