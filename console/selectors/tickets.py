"""The ticket page, the decision screen: its transcript, who is looking at it, and the objects it links to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from agent.lifecycle import RUN_CLOSABLE, RUN_FINAL
from agent.models import AgentRun, Notification, ProposedAction, Rating, Step
from agent.selectors.proposals import observation_summary
from console.models import Presence
from console.selectors.cards import (
    ActionCard,
    StepCard,
    action_card,
    args_line,
    call_summary,
    decision_context,
    delivered,
    draft_tool_names,
    rating_mine,
    step_card,
)
from tickets.models import Ticket, TicketComment

# Someone whose page refreshed their presence this recently is "here" (the page beats every 10 seconds).
PRESENCE_WINDOW = timedelta(seconds=35)
# The ticket page shows each run's latest steps; "Show earlier steps" loads as many again before them. Laying out
# hundreds of steps (their arguments, answers, ratings and proposals) cost more than the rest of the page.
STEPS_SHOWN = 100


@dataclass
class Entry:
    """One line of a collapsed transcript: a thought, a call with its result, or the final answer. `step` and `result`
    are the steps as their cards show them (arguments and answer laid out, a drafted text)."""

    kind: str
    step: StepCard
    result: StepCard | None = None
    summary: str = ""
    ok: bool = True
    repeats: int = 1
    args_line: str = ""
    proposals: list[ActionCard] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.step.step.tool_name, self.args_line, self.summary)

    @property
    def text_delivered(self) -> bool:
        """A note or reply that went out: answered ok, and not a shadow dry run (nor still waiting, nor refused)."""
        return self.result is not None and delivered(self.result.step.tool_output)


def transcript_entries(transcript: list[StepCard], proposals: dict[int, list[ActionCard]] | None = None) -> list[Entry]:
    """The transcript with each call and its observation on one line, and a call repeated as it was (a retry
    that got the same answer) counted instead of shown again with the thought that introduced it. `proposals` are
    the cards of each step's proposed actions, by step id."""
    proposals = proposals or {}
    cards = {card.step.pk: card for card in transcript}
    steps = [card.step for card in transcript]
    results = {s.tool_call_id: s for s in steps if s.kind == Step.Kind.OBSERVATION and s.tool_call_id}
    entries: list[Entry] = []
    for step in steps:
        if step.kind == Step.Kind.OBSERVATION and step.tool_call_id in results:
            continue
        if step.kind == Step.Kind.ACTION:
            result = results.get(step.tool_call_id)
            output = result.tool_output if result is not None else None
            entry = Entry(
                kind="call",
                step=cards[step.pk],
                result=cards[result.pk] if result is not None else None,
                summary=call_summary(step.tool_name, step.tool_input, output) if result is not None else "",
                ok=bool(output and output.get("ok")),
                args_line=args_line(step.tool_name, step.tool_input),
                proposals=proposals.get(step.pk, []),
            )
            previous = next((e for e in reversed(entries) if e.kind == "call"), None)
            if previous is not None and previous.key == entry.key and not entry.proposals and not previous.proposals:
                previous.repeats += 1
                if entries[-1].kind == "thought":
                    entries.pop()  # the thought that introduced the repeat says nothing new
                continue
            entries.append(entry)
        elif step.kind == Step.Kind.OBSERVATION:
            output = step.tool_output or {}
            entries.append(
                Entry("result", cards[step.pk], summary=observation_summary(output), ok=bool(output.get("ok")))
            )
        else:
            entries.append(Entry(str(step.kind), cards[step.pk]))
    return entries


@dataclass(frozen=True)
class PresenceInfo:
    assignee: AbstractBaseUser | None
    assigned_at: datetime | None
    others: list[str]  # other reviewers with the ticket open now
    assignee_here: bool
    mine: bool


@dataclass(frozen=True)
class Timeline:
    """A run's timeline as the page's poll sends it (console.views.tickets): the whole of it, or, when the page
    already holds the entries it had (`kept`), only the new ones."""

    html: str
    kept: bool = False
    new: str = ""


@dataclass(frozen=True)
class RunView:
    """One run on the ticket page: the row, where it stands, and its collapsed transcript."""

    run: AgentRun
    is_final: bool
    is_open_escalation: bool  # escalated or taken over, and no human has closed it with an outcome
    trigger_comment: TicketComment | None  # for a follow-up: what the customer wrote
    entries: list[Entry]
    timeline: Timeline | None = None  # rendered by the view
    first_index: int = 0  # the index of the first step shown: the steps before it are behind "Show earlier steps"

    @property
    def can_take_over(self) -> bool:
        return not self.is_final or self.is_open_escalation


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    comments: list[TicketComment]
    runs: list[RunView]
    decisions: list[ActionCard]
    any_run_active: bool
    presence: PresenceInfo


def presence_info(*, ticket: Ticket, user: AbstractBaseUser, now: datetime | None = None) -> PresenceInfo:
    """Who holds the ticket, and who else has it open now (one query)."""
    now = now or timezone.now()
    here = list(
        Presence.objects.filter(ticket=ticket, seen_at__gte=now - PRESENCE_WINDOW)
        .select_related("user")
        .order_by("seen_at")
    )
    names = {p.user_id: p.user.get_username() for p in here}
    return PresenceInfo(
        assignee=ticket.assignee,
        assigned_at=ticket.assigned_at,
        others=[name for user_id, name in names.items() if user_id != user.pk],
        assignee_here=ticket.assignee_id in names,
        mine=ticket.assignee_id == user.pk,
    )


def _steps(user: AbstractBaseUser) -> QuerySet[Step]:
    """Steps in order with this user's ratings, and their proposals with theirs and the notifications sent."""
    my_ratings = Rating.objects.filter(user=user)
    actions = ProposedAction.objects.select_related("decided_by").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings"),
        Prefetch("notifications", queryset=Notification.objects.order_by("created_at"), to_attr="sent"),
    )
    return Step.objects.order_by("index").prefetch_related(
        Prefetch("ratings", queryset=my_ratings, to_attr="my_ratings"),
        Prefetch("actions", queryset=actions, to_attr="proposals"),
    )


def _entries(run: AgentRun, steps: list[Step], comments: list[TicketComment], decisions: list[ActionCard]) -> list:
    """The collapsed transcript of these steps of the run, with the cards of their proposals; a pending one also goes
    into `decisions`, with its decision context (from the steps given)."""
    cards: dict[int, list[ActionCard]] = {}
    for step in steps:
        for action in step.proposals:  # type: ignore[attr-defined]
            action.run = run
            action.step = step
            pending = action.status == ProposedAction.Status.PENDING
            card = action_card(
                action,
                rating=rating_mine(action.my_ratings),
                comments_since=customer_comments_since(action, comments),
                context=decision_context(action, steps, notifications=action.sent) if pending else None,
            )
            cards.setdefault(step.pk, []).append(card)
            if pending:
                decisions.append(card)
    transcript = [step_card(step, rating=rating_mine(step.my_ratings)) for step in steps]  # type: ignore[attr-defined]
    return transcript_entries(transcript, cards)


def ticket_detail_get(
    *, ticket_id: int, user: AbstractBaseUser, since: dict[int, int] | None = None, whole: bool = False
) -> TicketDetail | None:
    """A ticket, its comments, each run's collapsed transcript with its proposals and this user's ratings, and a
    decision context for every pending proposal. Of each run, the latest STEPS_SHOWN steps (a run waits for a
    decision on its latest turn, so its pending proposals are among them), or from the step index `since` gives for
    it (what a polling page already shows), or all of them (`whole`)."""
    ticket = Ticket.objects.select_related("tenant_link", "assignee").filter(pk=ticket_id).first()
    if ticket is None:
        return None
    steps = _steps(user)
    if not whole:
        # The latest steps of each run: a window over the ticket's steps, in a subquery (Django filters on a window
        # function only where it stands alone), or from where a polling page's steps start.
        latest = (
            Step.objects.filter(run__ticket_id=ticket_id)
            .annotate(rank=Window(RowNumber(), partition_by=[F("run_id")], order_by=F("index").desc()))
            .filter(rank__lte=STEPS_SHOWN)
            .values("pk")
        )
        shown = Q(pk__in=latest)
        for run_id, first in (since or {}).items():
            shown |= Q(run_id=run_id, index__gte=first)
        steps = steps.filter(shown)
    runs = list(
        AgentRun.objects.filter(ticket=ticket)
        .select_related("workflow", "closed_by")
        .prefetch_related(Prefetch("steps", queryset=steps, to_attr="transcript"))
        .order_by("created_at", "id")
    )
    comments = list(ticket.comments.order_by("created_at", "id"))
    decisions: list[ActionCard] = []
    views = []
    for run in runs:
        run.ticket = ticket  # the follow-up plan reads the ticket's tenant and text: no query per run
        transcript = run.transcript  # type: ignore[attr-defined]
        views.append(
            RunView(
                run=run,
                is_final=run.status in RUN_FINAL,
                is_open_escalation=run.status in RUN_CLOSABLE and not run.outcome,
                trigger_comment=next((c for c in comments if c.pk == run.trigger_comment_id), None),
                entries=_entries(run, transcript, comments, decisions),
                first_index=transcript[0].index if transcript else 0,
            )
        )
    return TicketDetail(
        ticket=ticket,
        comments=comments,
        runs=views,
        decisions=decisions,
        any_run_active=any(not view.is_final for view in views),
        presence=presence_info(ticket=ticket, user=user),
    )


def run_steps_before_get(*, ticket_id: int, run_id: int, before: int, user: AbstractBaseUser) -> RunView | None:
    """The STEPS_SHOWN steps of a run before the step index `before`, collapsed as on the ticket page (its "Show
    earlier steps"); None when the ticket has no such run."""
    run = AgentRun.objects.select_related("ticket", "workflow").filter(pk=run_id, ticket_id=ticket_id).first()
    if run is None:
        return None
    steps = list(_steps(user).filter(run=run, index__lt=before, index__gte=before - STEPS_SHOWN))
    return RunView(
        run=run,
        is_final=run.status in RUN_FINAL,
        is_open_escalation=run.status in RUN_CLOSABLE and not run.outcome,
        trigger_comment=None,
        entries=_entries(run, steps, [], []),
        first_index=steps[0].index if steps else 0,
    )


def customer_comments_since(action: ProposedAction, comments: list[TicketComment]) -> list[TicketComment]:
    """What the customer wrote after a proposal that still waits: the reviewer decides with it in view."""
    if action.status != ProposedAction.Status.PENDING:
        return []
    return [
        c
        for c in comments
        if c.author_kind == TicketComment.AuthorKind.CUSTOMER and c.public and c.created_at > action.created_at
    ]


def ticket_live_get(*, ticket_id: int) -> tuple[Ticket, list[TicketComment]] | None:
    """The parts of a ticket that change outside the agent (status, comments from Zendesk), for the live poll."""
    ticket = Ticket.objects.select_related("tenant_link", "assignee").filter(pk=ticket_id).first()
    if ticket is None:
        return None
    return ticket, list(ticket.comments.order_by("created_at", "id"))


def action_get(*, action_id: int, user: AbstractBaseUser) -> ActionCard | None:
    """One proposal for its card, with this user's rating; a pending one with its decision context."""
    action = (
        ProposedAction.objects.select_related("run__ticket__tenant_link", "run__ticket__assignee", "run__workflow")
        .select_related("decided_by", "step")
        .prefetch_related(Prefetch("ratings", queryset=Rating.objects.filter(user=user), to_attr="my_ratings"))
        .filter(pk=action_id)
        .first()
    )
    if action is None:
        return None
    rating = rating_mine(action.my_ratings)  # type: ignore[attr-defined]
    if action.status != ProposedAction.Status.PENDING:
        return action_card(action, rating=rating)
    comments = list(TicketComment.objects.filter(ticket_id=action.run.ticket_id, created_at__gt=action.created_at))
    transcript = list(Step.objects.filter(run_id=action.run_id).order_by("index"))
    notifications = list(action.notifications.order_by("created_at"))
    return action_card(
        action,
        rating=rating,
        comments_since=customer_comments_since(action, comments),
        context=decision_context(action, transcript, notifications=notifications),
    )


def run_get(*, run_id: int) -> AgentRun | None:
    return AgentRun.objects.select_related("ticket", "workflow", "closed_by").filter(pk=run_id).first()


def draft_step_get(*, step_id: int, user: AbstractBaseUser) -> StepCard | None:
    """A drafted note or reply (the ACTION step of a draft tool), with this user's rating."""
    step = (
        Step.objects.filter(pk=step_id, kind=Step.Kind.ACTION, tool_name__in=draft_tool_names())
        .select_related("run")
        .prefetch_related(Prefetch("ratings", queryset=Rating.objects.filter(user=user), to_attr="my_ratings"))
        .first()
    )
    return step_card(step, rating=rating_mine(step.my_ratings)) if step else None  # type: ignore[attr-defined]
