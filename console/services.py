"""The console's own writes: presence (who has a ticket open)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from console.models import Presence
from tickets.models import Ticket


def presence_touch(*, user: AbstractBaseUser, ticket: Ticket) -> Presence:
    """Say this user has the ticket open now. Not audited: it is a heartbeat, not a decision."""
    presence, _ = Presence.objects.update_or_create(user=user, ticket=ticket, defaults={"seen_at": timezone.now()})
    return presence
