"""The API's list pagination: by keyset (agentconsole.keyset), never OFFSET, so any page costs what the first does.

A list answers {"items": [...], "next": <cursor or null>}; the next page is the same request with after=<next>.
A cursor the API did not give out, or the offset parameter of the old limit/offset pages, is a 400 with a message.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Schema
from ninja.pagination import PaginationBase

from agentconsole.keyset import CURSOR_MAX_CHARS, CursorError, keyset_page

# Larger limits are capped at the route's maximum rather than refused (as before); absurd ones are a 422.
MAX_LIMIT = 1_000_000_000
OFFSET_GONE = "Lists page by cursor, not offset: pass the previous page's `next` as `after`."


class KeysetPagination(PaginationBase):
    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Items per page; at most the route's maximum.")
        after: str = Field(
            "", max_length=CURSOR_MAX_CHARS, description="The previous page's `next`: the items after its last one."
        )

    class Output(Schema):
        items: list[Any]
        next: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")

    items_attribute = "items"

    def __init__(self, *, ordering: tuple[str, ...], max_limit: int = 100, **kwargs: Any) -> None:
        self.ordering = ordering
        self.max_limit = max_limit
        super().__init__(**kwargs)

    def paginate_queryset(self, queryset: QuerySet, pagination: Input, request: HttpRequest, **params: Any) -> Any:
        return keyset_response(
            queryset, ordering=self.ordering, limit=min(pagination.limit, self.max_limit), after=pagination.after,
            request=request,
        )  # fmt: skip


def keyset_response(
    queryset: QuerySet, *, ordering: tuple[str, ...], limit: int, after: str, request: HttpRequest
) -> dict[str, Any]:
    """{"items", "next"} of one page: for routes that page a queryset and then build their items from it."""
    if "offset" in request.GET:
        raise CursorError(OFFSET_GONE)
    page = keyset_page(queryset, ordering=ordering, limit=limit, after=after)
    return {"items": page.items, "next": page.next or None}
