"""The terms a tool's policy is declared in: the tools declare it (agent/tools/base.py), the gate reads it, and a
proposed action records the risk of its call. Defined once, here, below all three."""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Risk(models.TextChoices):
    """What a call may change. Defined once: ProposedAction.risk records a call's risk with these choices."""

    READ = "read", "Read"  # nothing: a read of the company's systems or the helpdesk
    WRITE = "write", "Write"  # the company's systems, through the Admin API
    HELPDESK = "helpdesk", "Helpdesk"  # the ticket itself: a comment, its group, its status


class TicketRole(StrEnum):
    """What a helpdesk tool does to the ticket, for the code that must find "the tool that routes" or "the tool
    that writes a private note" (the offline engine's follow-ups, the console's sidebar) without naming it."""

    NOTE = "note"
    REPLY = "reply"
    ROUTE = "route"
    SOLVE = "solve"
