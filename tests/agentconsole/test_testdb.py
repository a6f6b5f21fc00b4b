"""The test settings' database backend (agentconsole/testdb): what a transactional test leaves is gone before the
next, as after Django's TRUNCATE, while content types and permissions stay as post_migrate makes them."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from agentconsole.roles import REVIEWERS
from agentconsole.testdb.base import KEPT
from audit.models import AuditEvent
from audit.services import audit_event_record
from tests.factories import AgentRunFactory, ProposedActionFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _flush() -> None:
    """What TransactionTestCase does after each test (django/test/testcases.py, _fixture_teardown)."""
    call_command(
        "flush", verbosity=0, interactive=False, reset_sequences=False, allow_cascade=False, inhibit_post_migrate=False
    )


def _tables_with_rows() -> set[str]:
    models = [m for m in apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy]
    return {m._meta.db_table for m in models if m._default_manager.exists()}


def test_it_empties_every_table_a_test_wrote_even_the_append_only_audit_events() -> None:
    assert connection.vendor == "postgresql"
    assert type(connection.ops).__module__ == "agentconsole.testdb.base"
    action = ProposedActionFactory(run=AgentRunFactory())
    audit_event_record(verb="test.flush", obj=action, user=UserFactory(groups=[REVIEWERS]))
    with pytest.raises(Exception, match="append-only"):  # the trigger a DELETE would run into
        AuditEvent.objects.all().delete()
    written = {"agent_proposedaction", "agent_agentrun", "tickets_ticket", "audit_auditevent", "auth_user_groups"}
    assert written <= _tables_with_rows()

    _flush()

    assert _tables_with_rows() == set(KEPT)


def test_it_keeps_every_content_type_and_permission_and_puts_back_a_missing_one() -> None:
    expected = set(Permission.objects.values_list("content_type__app_label", "codename"))
    assert len(expected) >= 4 * len(apps.get_models())
    ContentType.objects.get_for_model(AuditEvent).delete()  # and its permissions with it

    _flush()

    assert set(Permission.objects.values_list("content_type__app_label", "codename")) == expected
