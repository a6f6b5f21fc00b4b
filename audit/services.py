from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from audit.models import AuditEvent


def canonical_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of payload: key order and whitespace never change the hash."""
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def audit_event_record(
    *,
    verb: str,
    obj: models.Model,
    payload: dict[str, Any] | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
    actor_kind: str | None = None,
) -> AuditEvent:
    """Append one audit event. A real user makes the actor kind "user" unless told otherwise."""
    real_user = user if user is not None and user.is_authenticated else None
    payload = payload or {}
    event = AuditEvent(
        actor_kind=actor_kind or (AuditEvent.ActorKind.USER if real_user else AuditEvent.ActorKind.SYSTEM),
        actor=real_user,
        verb=verb,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        payload=payload,
        payload_hash=canonical_hash(payload),
    )
    # The actor is a loaded user and the table has no unique fields: validating them would cost a query each, on
    # every status change of every run.
    event.full_clean(exclude=["actor"], validate_unique=False, validate_constraints=False)
    event.save()
    return event
