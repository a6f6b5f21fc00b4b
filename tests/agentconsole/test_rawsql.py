"""agentconsole.rawsql's shortcuts send and load exactly what the ORM would: the same parameters for every field of
the loop's models, the same instances from the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, models
from django.db.models.signals import post_init
from django.utils import timezone
from psycopg.types.json import Jsonb

from agent.models import AgentRun
from agentconsole import rawsql
from tests.factories import (
    AgentRunFactory,
    ProposedActionFactory,
    StepFactory,
    TicketCommentFactory,
    WorkflowFactory,
)
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def _comparable(value: Any) -> Any:
    return (Jsonb, value.obj) if isinstance(value, Jsonb) else (type(value), value)


def _rows() -> list[models.Model]:
    """A row of each model the loop writes or reads by hand, with values in most fields."""
    action = ProposedActionFactory(
        run=AgentRunFactory(status="running", tokens_in=5, engine="offline", workflow=WorkflowFactory()),
        args={"value": 7},
        approved_args_hash="a" * 64,
        decided_at=timezone.now(),
    )
    step = StepFactory(run=action.run, tool_input={"x": [1, "é"]})
    comment = TicketCommentFactory(ticket=action.run.ticket)
    return [action, action.run, step, action.run.ticket, action.run.ticket.tenant_link, comment, action.run.workflow]


def test_it_sends_the_parameters_the_orm_would_for_every_field_of_the_loops_models() -> None:
    checked = 0
    for obj in _rows():
        for field in type(obj)._meta.concrete_fields:
            value = getattr(obj, field.attname)
            for candidate in (value, None):
                assert _comparable(rawsql.prep(type(obj), field.name, candidate)) == _comparable(
                    field.get_db_prep_save(candidate, connection=connection)
                ), (type(obj).__name__, field.name, candidate)
                checked += 1
    assert checked > 100


def test_it_prepares_a_naive_datetime_and_an_int_for_a_char_field_as_the_orm_does() -> None:
    naive = timezone.now().replace(tzinfo=None)
    with pytest.warns(RuntimeWarning):
        expected = AgentRun._meta.get_field("started_at").get_db_prep_save(naive, connection=connection)
    with pytest.warns(RuntimeWarning):
        assert rawsql.prep(AgentRun, "started_at", naive) == expected
    assert rawsql.prep(AgentRun, "engine", 7) == "7"
    assert type(rawsql.prep(AgentRun, "turns", 3)) is type(
        AgentRun._meta.get_field("turns").get_db_prep_save(3, connection=connection)
    )


def test_it_loads_the_instances_the_orm_loads() -> None:
    for obj in _rows():
        model = type(obj)
        (row,) = rawsql.execute(f"SELECT {rawsql.columns(model)} FROM {rawsql.table(model)} WHERE id = %s", [obj.pk])  # noqa: S608 - names from the model's meta
        loaded, orm = rawsql.load(model, row), model.objects.get(pk=obj.pk)
        assert type(loaded) is model
        assert {k: v for k, v in loaded.__dict__.items() if k != "_state"} == {
            k: v for k, v in orm.__dict__.items() if k != "_state"
        }
        assert (loaded._state.adding, loaded._state.db) == (False, "default")


def test_it_builds_instances_through_the_model_when_a_receiver_watches_them() -> None:
    seen: list[models.Model] = []

    def receiver(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        seen.append(instance)

    run = AgentRunFactory()
    (row,) = rawsql.execute(f"SELECT {rawsql.columns(AgentRun)} FROM {rawsql.table(AgentRun)} WHERE id = %s", [run.pk])  # noqa: S608 - names from the model's meta
    post_init.connect(receiver, sender=AgentRun)
    try:
        loaded = rawsql.load(AgentRun, row)
    finally:
        post_init.disconnect(receiver, sender=AgentRun)
    assert seen == [loaded] and loaded.pk == run.pk


@pytest.mark.parametrize("watched", [False, True], ids=["plain", "through-the-model"])
def test_it_loads_a_field_left_out_as_the_orm_defers_it(watched: bool) -> None:
    ticket = AgentRunFactory().ticket
    Ticket.objects.filter(pk=ticket.pk).update(raw_payload={"ticket": {"id": 7}})
    without = ("raw_payload",)
    sql = f"SELECT {rawsql.columns(Ticket, without=without)} FROM {rawsql.table(Ticket)} WHERE id = %s"  # noqa: S608 - names from the model's meta
    (row,) = rawsql.execute(sql, [ticket.pk])
    if watched:
        post_init.connect(_watch, sender=Ticket)
    try:
        loaded = rawsql.load(Ticket, row, without=without)
    finally:
        post_init.disconnect(_watch, sender=Ticket)
    orm = Ticket.objects.defer("raw_payload").get(pk=ticket.pk)
    assert "raw_payload" not in sql and len(row) == len(Ticket._meta.concrete_fields) - 1
    assert loaded.get_deferred_fields() == orm.get_deferred_fields() == {"raw_payload"}
    assert {k: v for k, v in loaded.__dict__.items() if k != "_state"} == {
        k: v for k, v in orm.__dict__.items() if k != "_state"
    }
    assert loaded.raw_payload == {"ticket": {"id": 7}}  # read, it is loaded as a deferred field is


def _watch(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    pass
