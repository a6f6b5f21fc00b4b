"""Limit/offset pagination with bounds: an offset past what the database can count is a 422, never a 500."""

from __future__ import annotations

from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

# PostgreSQL's OFFSET is a bigint; a billion rows is far past any page a person or a script asks for.
MAX_OFFSET = 1_000_000_000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_OFFSET, description="Items per page; at most the route's maximum.")
        offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Items to skip.")
