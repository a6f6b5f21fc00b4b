"""The tickets view's selector: every ticket, searchable and filterable, in pages that stay fast at any size.

Split from the console selectors by topic. Pagination is by keyset — (sort value, id) of the last row seen, on the
(created_at, id) and (updated_at, id) indexes — so page 2,000 costs what page 1 costs; the total shown beside the
list is the count of the very queryset the list pages through.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from agent.lifecycle import RUN_WORKING
from agent.models import AgentRun, ProposedAction, Workflow, WorkflowVersion
from agent.selectors.evidence import EVIDENCE_KEYS, evidence_ticket_filter
from tickets.models import TenantLink, Ticket

PAGE_SIZE = 50
# The total beside the list counts at most this many rows and then says "1,000+": an exact count of a broad
# filter (a common word, "to rate") reads every row it matches, and nobody pages through a thousand tickets.
TOTAL_CAP = 1000
SORTS: dict[str, tuple[str, str]] = {
    "newest": ("created_at", "desc"),
    "oldest": ("created_at", "asc"),
    "updated": ("updated_at", "desc"),
}
OUTCOMES: dict[str, str] = {
    "pending": "Awaiting a decision",
    "working": "Queued or running",
    "resolved": "Resolved by the agent",
    "drafted": "Drafted in shadow",
    "escalated": "Escalated, open",
    "taken_over": "Taken over, open",
    "closed": "Closed by a human",
    "no_run": "No agent run",
}
SAVED_VIEWS: dict[str, tuple[str, dict[str, str]]] = {
    "all": ("All tickets", {}),
    "needs_rating": ("Shadow drafts to rate", {"needs_rating": "1", "sort": "oldest"}),
    "mine": ("Assigned to me", {"assigned": "me"}),
    "escalated": ("Open escalations", {"outcome": "escalated"}),
    "pending": ("Awaiting a decision", {"outcome": "pending", "sort": "oldest"}),
}
TENANT_LINKS_MATCHED = 500  # a word that names more tenants than this is no tenant search
_NUMBER = re.compile(r"^#?(\d{1,20})$")
_QUALIFIED = re.compile(r"\b(tenant|requester|org):(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class TicketQuery:
    q: str = ""
    workflow: str = ""  # slug
    phase: str = ""
    outcome: str = ""
    needs_rating: bool = False
    assigned: str = ""  # "me" or ""
    evidence: str = ""
    version: int | None = None  # a version number of `workflow`: evidence of that version only
    sort: str = "newest"
    after: str = ""  # cursor: rows after this one in the sort order
    before: str = ""  # cursor: rows before it (the previous page)


@dataclass(frozen=True)
class TicketRow:
    """One ticket of the list and its latest run."""

    ticket: Ticket
    latest_run: AgentRun | None


@dataclass(frozen=True)
class TicketPage:
    tickets: list[TicketRow]
    total: int  # at most TOTAL_CAP + 1: see total_label
    next_cursor: str
    previous_cursor: str
    first_page: bool
    cursor_ignored: bool = False  # the page link was not one this view made: the first page is shown instead

    @property
    def total_label(self) -> str:
        """ "12 tickets", "1 ticket", or "1,000+ tickets" past the cap."""
        if self.total > TOTAL_CAP:
            return f"{TOTAL_CAP:,}+ tickets"
        return f"{self.total:,} ticket{'' if self.total == 1 else 's'}"


def _runs(**lookup: object) -> Exists:
    return Exists(AgentRun.objects.filter(ticket=OuterRef("pk"), **lookup))


def _unrated_shadow_drafts() -> QuerySet[AgentRun]:
    """Shadow runs that finished with their drafts and that no reviewer has rated any part of: one probe of a partial
    index (agent_run_unrated_drafts) per ticket. Looking for a rating of each run's proposals and steps instead read
    five index pages a run, and the capped total of the saved view reads thousands of runs."""
    return AgentRun.objects.filter(phase=Workflow.Phase.SHADOW, status=AgentRun.Status.COMPLETED, rated=False)


def _outcome_filter(outcome: str) -> Q:
    if outcome == "pending":
        return Q(
            Exists(ProposedAction.objects.filter(run__ticket=OuterRef("pk"), status=ProposedAction.Status.PENDING))
        )
    if outcome == "working":
        return Q(_runs(status__in=RUN_WORKING))
    if outcome == "resolved":
        return Q(Exists(AgentRun.objects.filter(ticket=OuterRef("pk"), status=AgentRun.Status.COMPLETED).exclude(
            phase=Workflow.Phase.SHADOW)))  # fmt: skip
    if outcome == "drafted":
        return Q(_runs(status=AgentRun.Status.COMPLETED, phase=Workflow.Phase.SHADOW))
    if outcome == "escalated":
        return Q(_runs(status=AgentRun.Status.ESCALATED, outcome=""))
    if outcome == "taken_over":
        return Q(_runs(status=AgentRun.Status.TAKEN_OVER, outcome=""))
    if outcome == "closed":
        return Q(Exists(AgentRun.objects.filter(ticket=OuterRef("pk")).exclude(outcome="")))
    if outcome == "no_run":
        return ~Q(Exists(AgentRun.objects.filter(ticket=OuterRef("pk"))))
    return Q()


def _search(q: str) -> Q:
    """Free text: a Zendesk number ("4512" or "#4512"), qualifiers (tenant:acme, requester:9001, org:360001),
    and words matched in the subject, the requester or the tenant."""
    text = q.strip()
    condition = Q()
    for name, value in _QUALIFIED.findall(text):
        key = name.lower()
        if key == "tenant":
            condition &= Q(tenant_link__tenant_id__iexact=value)
        elif key == "requester":
            condition &= Q(requester_id=value)
        else:
            condition &= Q(organization_id=value)
    text = _QUALIFIED.sub(" ", text).strip()
    if not text:
        return condition
    number = _NUMBER.match(text)
    if number:
        return condition & (Q(external_id=number.group(1)) | Q(requester_id=number.group(1)))
    # Each alternative is a condition on the ticket's own columns, the matching tenant links read first (a join,
    # or a subquery, inside the OR makes PostgreSQL read every ticket), so it can OR three indexes: the trigram
    # index on the subject (console migration 0004), the requester's and the tenant link's.
    links = TenantLink.objects.filter(Q(tenant_id__iexact=text) | Q(organization_name__icontains=text))
    link_ids = list(links.values_list("pk", flat=True)[:TENANT_LINKS_MATCHED])
    return condition & (Q(subject__icontains=text) | Q(requester_id=text) | Q(tenant_link_id__in=link_ids))


CURSOR_NOT_UNDERSTOOD = "The page link was not understood (edited or from another list); this is the first page."


def encode_cursor(value: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{value.isoformat()}|{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    """None for anything that is not a cursor this module made (a stale or edited URL shows the first page, and
    says so)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value, pk = raw.rsplit("|", 1)
        moment = datetime.fromisoformat(value)
        number = int(pk)
        if moment.tzinfo is None or not 0 < number < 2**63:
            return None
        # In UTC, as the database compares it: a time near the ends of Python's range overflows here, not there.
        return moment.astimezone(UTC), number
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


def ticket_queryset(*, query: TicketQuery, user: AbstractBaseUser) -> QuerySet[Ticket]:
    """Every filter of the view, unpaginated: the list and its total both come from this."""
    tickets = Ticket.objects.all()
    if query.q:
        tickets = tickets.filter(_search(query.q))
    workflow_id = None
    if query.workflow:
        workflow_id = Workflow.objects.filter(slug=query.workflow).values_list("pk", flat=True).first() or -1
        if query.evidence not in EVIDENCE_KEYS:  # the evidence filter below is scoped to the workflow already
            tickets = tickets.filter(_runs(workflow_id=workflow_id))
    if query.phase:
        tickets = tickets.filter(_runs(phase=query.phase))
    if query.outcome:
        tickets = tickets.filter(_outcome_filter(query.outcome))
    if query.needs_rating:
        tickets = tickets.filter(Exists(_unrated_shadow_drafts().filter(ticket=OuterRef("pk"))))
    if query.assigned == "me":
        tickets = tickets.filter(assignee=user)
    if query.evidence in EVIDENCE_KEYS:
        version_id = None
        if workflow_id and query.version is not None:
            versions = WorkflowVersion.objects.filter(workflow_id=workflow_id, number=query.version)
            version_id = versions.values_list("pk", flat=True).first() or -1
        tickets = tickets.filter(
            evidence_ticket_filter(key=query.evidence, workflow_id=workflow_id, version_id=version_id)
        )
    return tickets


def ticket_page_get(*, query: TicketQuery, user: AbstractBaseUser) -> TicketPage:
    """One page of tickets, each with its runs (for the workflow, phase and outcome columns), in three queries."""
    column, direction = SORTS.get(query.sort, SORTS["newest"])
    tickets = ticket_queryset(query=query, user=user)
    total = tickets.order_by()[: TOTAL_CAP + 1].count()  # COUNT(*) over a LIMIT: stops at the cap
    forward = not query.before
    cursor = decode_cursor(query.before or query.after) if (query.before or query.after) else None
    # Walking back from `before` reads the sort backwards and reverses the page afterwards.
    descending = (direction == "desc") == forward
    page = tickets
    if cursor is not None:
        value, pk = cursor
        if descending:
            page = page.filter(Q(**{f"{column}__lt": value}) | Q(**{column: value, "pk__lt": pk}))
        else:
            page = page.filter(Q(**{f"{column}__gt": value}) | Q(**{column: value, "pk__gt": pk}))
    order = [f"-{column}", "-id"] if descending else [column, "id"]
    runs = AgentRun.objects.select_related("workflow").order_by("-created_at", "-id")
    rows = list(
        page.select_related("tenant_link", "assignee")
        .defer("raw_payload")  # the whole Zendesk event, which no list shows
        .prefetch_related(Prefetch("runs", queryset=runs, to_attr="run_list"))
        .order_by(*order)[: PAGE_SIZE + 1]
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if not forward:
        rows.reverse()
    has_next = more if forward else cursor is not None
    has_previous = (cursor is not None) if forward else more
    return TicketPage(
        tickets=[TicketRow(ticket, ticket.run_list[0] if ticket.run_list else None) for ticket in rows],  # type: ignore[attr-defined]
        total=total,
        next_cursor=encode_cursor(getattr(rows[-1], column), rows[-1].pk) if rows and has_next else "",
        previous_cursor=encode_cursor(getattr(rows[0], column), rows[0].pk) if rows and has_previous else "",
        first_page=cursor is None,
        cursor_ignored=cursor is None and bool(query.before or query.after),
    )
