from __future__ import annotations

import pytest

from audit.models import AUDIT_EVENT_IMMUTABLE, AuditEvent
from audit.services import audit_event_record, canonical_hash
from tests.factories import TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_hashes_payloads_canonically() -> None:
    assert canonical_hash({"b": 1, "a": [1, 2]}) == canonical_hash({"a": [1, 2], "b": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_it_records_who_did_what_to_which_object() -> None:
    user = UserFactory()
    ticket = TicketFactory()
    event = audit_event_record(verb="ticket.routed", obj=ticket, payload={"to": "billing"}, user=user)
    assert (event.actor_kind, event.actor, event.object_type, event.object_id) == (
        "user",
        user,
        "tickets.ticket",
        str(ticket.pk),
    )
    assert event.payload_hash == canonical_hash({"to": "billing"})


def test_it_refuses_to_update_or_delete_an_event() -> None:
    event = audit_event_record(verb="x", obj=TicketFactory(), actor_kind=AuditEvent.ActorKind.SYSTEM)
    event.verb = "rewritten"
    with pytest.raises(ValueError, match=AUDIT_EVENT_IMMUTABLE):
        event.save()
    with pytest.raises(ValueError, match=AUDIT_EVENT_IMMUTABLE):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).verb == "x"


def test_it_refuses_updates_and_deletes_in_the_database_itself() -> None:
    from django.db import IntegrityError, connection, transaction

    event = audit_event_record(verb="x", obj=TicketFactory(), actor_kind=AuditEvent.ActorKind.SYSTEM)
    attempts = [
        lambda: AuditEvent.objects.filter(pk=event.pk).update(verb="rewritten"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        lambda: connection.cursor().execute("UPDATE audit_auditevent SET payload_hash = 'x' WHERE id = %s", [event.pk]),
        lambda: connection.cursor().execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk]),
    ]
    for attempt in attempts:
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            attempt()
    assert AuditEvent.objects.get(pk=event.pk).verb == "x"
