"""Helpdesk tools: write to the ticket the run works on (Zendesk or the local helpdesk, via helpdesk_for).

The ticket is always ctx.ticket_id: the model has no argument that could name another ticket. Notes and replies
carry a marker derived from the call's idempotency key, so the same call run again (a retry, a resumed run) finds
the comment it already posted instead of posting it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from agent.policy import Risk, TicketRole
from agent.tools import register
from agent.tools.base import ErrorType, Observation, Reconciled, Tool, ToolContext
from agentconsole.errors import ApplicationError
from tickets.helpdesk import HelpdeskError, HelpdeskResult, helpdesk_for
from tickets.models import Ticket, TicketComment
from tickets.services.comments import ticket_comment_confirm
from tickets.snapshot import comment_marker

TICKET_NOT_FOUND = "Ticket {ticket_id} does not exist."
UNKNOWN_POD = "There is no pod {pod!r}. Route to one of: {allowed}."
HELPDESK_FAILED = "The helpdesk ({backend}) failed: {message}"
COMMENT_NOT_CHECKED = "Could not check whether the comment was posted."
MAX_BODY_CHARS = 20_000


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BodyArgs(_Args):
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS, description="The text, in plain language.")


class RouteArgs(_Args):
    pod: str = Field(min_length=1, max_length=64, description="The pod's name, e.g. 'billing' or 'humans'.")
    reason: str = Field(
        default="", max_length=500, description="Why this pod: what in the ticket falls under what it owns."
    )


class NoArgs(_Args):
    pass


COMMENT_TOOLS = frozenset({"add_private_note", "reply_to_customer"})


def call_marker(ctx: ToolContext) -> str:
    """The marker of the comment a call posts: from its idempotency key when it has one (a proposed action), so a
    call run again finds its comment (helpdesk.comment_landed(ticket, call_marker(ctx))); fresh otherwise."""
    return comment_marker(ctx.idempotency_key or "")


def pods_described() -> str:
    return "; ".join(
        f"{name}: {settings.HELPDESK_POD_DESCRIPTIONS.get(name) or 'no description configured'}"
        for name in sorted(settings.HELPDESK_PODS)
    )


def _ticket(ctx: ToolContext) -> Ticket | None:
    # Not the stored Zendesk event (raw_payload), which no helpdesk operation reads: it can outweigh the whole row.
    return Ticket.objects.select_related("tenant_link").defer("raw_payload").filter(pk=ctx.ticket_id).first()


def _on_ticket(
    ctx: ToolContext, operation: Callable[[object, Ticket], HelpdeskResult], *, comment: bool = False
) -> Observation:
    ticket = _ticket(ctx)
    if ticket is None:
        return Observation.failure(ErrorType.NOT_FOUND, TICKET_NOT_FOUND.format(ticket_id=ctx.ticket_id))
    helpdesk = helpdesk_for(ticket)
    try:
        result = operation(helpdesk, ticket)
    except HelpdeskError as exc:
        return Observation.failure(
            ErrorType.UPSTREAM,
            HELPDESK_FAILED.format(backend=helpdesk.name, message=exc.message),
            retryable=exc.retryable,
            # A comment that failed in a way that can pass (a timeout, a 5xx) may have been posted all the same:
            # the loop looks for it before anything else.
            uncertain=comment and exc.ambiguous,
            status_code=exc.status,
        )
    except ApplicationError as exc:  # a lifecycle rule of the local helpdesk, e.g. a closed ticket
        return Observation.failure(ErrorType.REFUSED, exc.message)
    return Observation.success(result.data, backend=result.backend, operation=result.operation)


class _Comment(Tool):
    """A comment on the ticket, sent with a marker (call_marker: from the call's idempotency key) so that a comment
    whose sending was interrupted is looked up on the helpdesk instead of posted twice."""

    args_schema = BodyArgs
    risk = Risk.HELPDESK
    tenant_arg = ""
    text_arg = "body"
    public: bool

    def run(self, args: BodyArgs, ctx: ToolContext) -> Observation:
        marker = call_marker(ctx)
        if self.public:
            return _on_ticket(
                ctx, lambda helpdesk, ticket: helpdesk.add_public_reply(ticket, args.body, marker=marker), comment=True
            )
        return _on_ticket(
            ctx, lambda helpdesk, ticket: helpdesk.add_private_note(ticket, args.body, marker=marker), comment=True
        )

    def reconcile(
        self, args: BodyArgs, ctx: ToolContext, attempt: Observation, started_at: datetime
    ) -> tuple[Reconciled, Observation]:
        ticket = _ticket(ctx)
        if ticket is None or not ctx.idempotency_key:
            return Reconciled.UNKNOWN, Observation.failure(ErrorType.NOT_FOUND, COMMENT_NOT_CHECKED)
        helpdesk = helpdesk_for(ticket)
        try:
            found = helpdesk.comment_landed(ticket, call_marker(ctx))
        except HelpdeskError as exc:
            return Reconciled.UNKNOWN, Observation.failure(
                ErrorType.OUTCOME_UNKNOWN, HELPDESK_FAILED.format(backend=helpdesk.name, message=exc.message)
            )
        if found is None:
            return Reconciled.NOT_APPLIED, attempt
        # The intent recorded before posting is settled too, as the helpdesk's own retry would settle it.
        pending = ticket.comments.filter(marker=call_marker(ctx)).exclude(delivery=TicketComment.Delivery.SENT).first()
        if pending is not None:
            ticket_comment_confirm(comment=pending, external_id=found.external_id, author_id=found.author_id)
        landed = {"comment_id": found.external_id, "public": found.public, "already_posted": True}
        return Reconciled.APPLIED, Observation.success(landed, backend=helpdesk.name, found_by_marker=True)


@register
class AddPrivateNote(_Comment):
    name = "add_private_note"
    description = (
        "Add an internal note to the ticket, visible to support staff only, never to the customer. Use it to "
        "record findings, evidence (log lines, values read) and what you did or recommend."
    )
    public = False
    context_only = True
    ticket_role = TicketRole.NOTE
    approval_effect = "Approving posts this private note to the ticket."


@register
class RouteTicket(Tool):
    name = "route_ticket"
    args_schema = RouteArgs
    risk = Risk.HELPDESK
    tenant_arg = ""
    context_only = True
    ticket_role = TicketRole.ROUTE

    @property
    def description(self) -> str:  # type: ignore[override]
        # Built per call: the pods are deployment settings, and the model should see the ones in force.
        return (
            "Assign the ticket to the engineering pod that owns its problem, and say why in `reason`. Pods and what "
            f"each owns — {pods_described()}. Use 'humans' to hand the ticket to a person."
        )

    def run(self, args: RouteArgs, ctx: ToolContext) -> Observation:
        group_id = settings.HELPDESK_PODS.get(args.pod)
        if group_id is None:
            allowed = ", ".join(sorted(settings.HELPDESK_PODS))
            return Observation.failure(
                ErrorType.REFUSED,
                UNKNOWN_POD.format(pod=args.pod, allowed=allowed),
                allowed_pods=sorted(settings.HELPDESK_PODS),
            )
        observation = _on_ticket(ctx, lambda helpdesk, ticket: helpdesk.set_group(ticket, group_id))
        if observation.ok:
            owns = settings.HELPDESK_POD_DESCRIPTIONS.get(args.pod, "")
            data = {**observation.data, "pod": args.pod, "pod_owns": owns, "reason": args.reason}
            return Observation.success(data, **observation.meta)
        return observation


@register
class ReplyToCustomer(_Comment):
    name = "reply_to_customer"
    description = (
        "Send a public reply to the customer on the ticket. The customer reads it: be clear and polite, say "
        "what was found and done, and never include internal details (log lines, config keys, internal names)."
    )
    customer_facing = True
    public = True
    ticket_role = TicketRole.REPLY
    approval_effect = "Approving posts this reply to the ticket — the customer sees it."


@register
class SolveTicket(Tool):
    name = "solve_ticket"
    description = (
        "Mark the ticket solved. Only after the fix is verified and the customer has been told. Takes no arguments."
    )
    args_schema = NoArgs
    risk = Risk.HELPDESK
    tenant_arg = ""
    customer_facing = True
    ticket_role = TicketRole.SOLVE
    approval_effect = "Approving marks the ticket solved in the helpdesk."

    def run(self, args: NoArgs, ctx: ToolContext) -> Observation:
        return _on_ticket(ctx, lambda helpdesk, ticket: helpdesk.set_solved(ticket))
