from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, models, transaction
from django.utils import timezone

from agentconsole import rawsql
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


_AUDIT_INSERT = (
    'INSERT INTO "audit_auditevent" ("actor_kind", "actor_id", "verb", "object_type", "payload", "payload_hash", '
    '"created_at", "object_id")'
)


def _audit_params(
    verb: str,
    object_type: str,
    payload: dict[str, Any],
    user: AbstractBaseUser | AnonymousUser | None,
    actor_kind: str | None,
) -> list[Any]:
    real_user = user if user is not None and user.is_authenticated else None
    return [
        actor_kind or (AuditEvent.ActorKind.USER if real_user else AuditEvent.ActorKind.SYSTEM),
        real_user.pk if real_user is not None else None,
        verb,
        object_type,
        rawsql.prep(AuditEvent, "payload", payload),
        canonical_hash(payload),
        rawsql.prep(AuditEvent, "created_at", timezone.now()),
    ]


class Also(NamedTuple):
    """A statement that goes with an audited change (audited_change's `also`): a data-modifying statement that may
    read the change's returned rows from `change`. `returns`: it ends in RETURNING one column, whose first value is
    added to each row audited_change returns."""

    sql: str
    params: Sequence[Any] = ()
    returns: bool = False


def audit_insert_sql(
    source: str,
    *,
    verb: str,
    model: type[models.Model],
    payload: dict[str, Any],
    user: AbstractBaseUser | AnonymousUser | None = None,
    actor_kind: str | None = None,
) -> tuple[str, list[Any]]:
    """The audit INSERT for each row of `source`, a data-modifying WITH of the caller's statement (PostgreSQL) that
    returns the changed rows' `id`: one event per row, none when it changed nothing. Its parameters, to place where
    the caller places the INSERT; the entry is audit_event_record's."""
    params = _audit_params(verb, model._meta.label_lower, payload, user, actor_kind)
    return f"{_AUDIT_INSERT} SELECT %s, %s, %s, %s, %s, %s, %s, {source}.id::text FROM {source}", params  # noqa: S608 - names of ours


def audited_change(
    sql: str,
    params: Sequence[Any],
    *,
    verb: str,
    model: type[models.Model],
    payload: dict[str, Any] | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
    actor_kind: str | None = None,
    also: Sequence[Also] = (),
) -> list[tuple[Any, ...]]:
    """Make one change to rows of `model` and append its audit event, in the same transaction: `sql` is an UPDATE
    or INSERT ending in `RETURNING "id", ...`, and every row it returns gets one event (none when it changed
    nothing, as a conditional UPDATE may). Returns the rows.

    On PostgreSQL the change and its events are one statement (the change in a data-modifying WITH); elsewhere two,
    in one transaction. The payload is the caller's, as audit_event_record's. `also` (PostgreSQL only): statements
    made part of the same one (see Also). One statement needs no transaction of its own: in autocommit it is one."""
    payload = payload or {}
    audit = _audit_params(verb, model._meta.label_lower, payload, user, actor_kind)
    if connection.vendor == "postgresql":
        ctes = "".join(f", also{n} AS ({extra.sql})" for n, extra in enumerate(also))
        returned = "".join(f", (SELECT * FROM also{n} LIMIT 1)" for n, extra in enumerate(also) if extra.returns)  # noqa: S608 - names of ours
        statement = (
            f"WITH change AS ({sql}), audit AS ({_AUDIT_INSERT} "  # noqa: S608 - the caller's statements, values as parameters
            f"SELECT %s, %s, %s, %s, %s, %s, %s, change.id::text FROM change){ctes} "
            f"SELECT change.*{returned} FROM change"
        )
        return rawsql.execute(statement, [*params, *audit, *(value for extra in also for value in extra.params)])
    assert not also, "statements that go with a change are PostgreSQL's"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        for row in rows:
            cursor.execute(f"{_AUDIT_INSERT} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", [*audit, str(row[0])])
    return rows
