"""What every JSON API answer that is not a success looks like, and which answers each kind of route gives."""

from __future__ import annotations

from typing import Any

from ninja import Schema


class ErrorOut(Schema):
    """400, 401, 403, 404, 409 and 413: a message for people; for bad input, the fields at fault."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class ValidationErrorOut(Schema):
    """422: the request does not match this document (a wrong type, a missing field, a value not in an enum)."""

    detail: list[dict[str, Any]]


# Every route needs a reviewer or admin (401 without credentials, 403 for anyone else), may refuse unsafe input
# (400: NUL, lone surrogates, deep nesting, oversized numbers) and answers a request that does not match its
# schema with 422.
READ_ERRORS: dict[int, type[Schema]] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 422: ValidationErrorOut}
ONE_ERRORS: dict[int, type[Schema]] = {**READ_ERRORS, 404: ErrorOut}
WRITE_ERRORS: dict[int, type[Schema]] = {**ONE_ERRORS, 409: ErrorOut}
