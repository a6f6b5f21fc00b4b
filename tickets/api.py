# No `from __future__ import annotations` here: @paginate wraps the handlers, and ninja then resolves their
# string annotations in ninja's own module namespace, where the filter schemas do not exist.


from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Path, Query, Router
from ninja.pagination import paginate

from agentconsole.errors import NotFoundError
from agentconsole.pagination import KeysetPagination
from agentconsole.schemas import ONE_ERRORS, READ_ERRORS
from tickets.models import Ticket
from tickets.schemas import TicketDetailOut, TicketFilterIn, TicketOut
from tickets.selectors import TICKET_ORDER, ticket_detail_get, ticket_list_filtered

TICKET_NOT_FOUND = "No ticket {ticket_id}."
PAGE_MAX = 100
MAX_ID = 2**63 - 1  # ids are bigints

# Every route needs a reviewer or an admin (token or session): the API sets that for every router.
router = Router(tags=["tickets"])


@router.get("/tickets", response={200: list[TicketOut], **READ_ERRORS}, summary="Tickets, newest first")
@paginate(KeysetPagination, ordering=TICKET_ORDER, max_limit=PAGE_MAX)
def ticket_list(request: HttpRequest, filters: Query[TicketFilterIn]) -> QuerySet[Ticket]:
    return ticket_list_filtered(status=filters.status, workflow=filters.workflow)


@router.get("/tickets/{ticket_id}", response={200: TicketDetailOut, **ONE_ERRORS}, summary="One ticket")
def ticket_get(request: HttpRequest, ticket_id: int = Path(..., ge=1, le=MAX_ID)) -> Ticket:
    ticket = ticket_detail_get(ticket_id=ticket_id)
    if ticket is None:
        raise NotFoundError(TICKET_NOT_FOUND.format(ticket_id=ticket_id))
    return ticket
