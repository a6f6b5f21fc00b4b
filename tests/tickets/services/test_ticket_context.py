"""Reading a ticket from Zendesk: cached per ticket version, and the organization's tenant resolved from it."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import TenantLinkFactory, TicketFactory
from tests.support import webhook_deliver, zendesk_event
from tests.zendesk_standin import ZendeskStandIn
from tickets.helpdesk import ticket_context_ensure
from tickets.models import HelpdeskUser, TenantLink, Ticket

pytestmark = pytest.mark.django_db

READS = [
    "GET /api/v2/tickets/35436.json?include=users,organizations",
    "GET /api/v2/tickets/35436/comments.json?include=users&page[size]=100",
]


@pytest.fixture
def remote(zendesk_api: ZendeskStandIn) -> ZendeskStandIn:
    zendesk_api.add_user(701, name="Olivia Park", email="ops@initech.example", locale="en-US")
    zendesk_api.add_user(702, name="Sam Support", email="sam@support.example", role="agent")
    zendesk_api.organizations["801"] = {
        "id": 801,
        "name": "Initech Payroll",
        "external_id": "ext-initech",
        "organization_fields": {"tenant_id": "initech"},
    }
    zendesk_api.add_ticket(
        35436, requester_id=701, organization_id=801, description="I cannot log in.", updated_at="2026-11-23T10:00:00Z"
    )
    zendesk_api.add_comment(35436, body="I cannot log in.", author_id=701, created_at="2026-11-23T10:00:00Z")
    zendesk_api.add_comment(
        35436, body="Checking.", public=False, author_id=702, created_at="2026-11-23T10:02:00Z",
        attachments=[{"file_name": "trace.txt"}],
    )  # fmt: skip
    return zendesk_api


def _post(body: dict) -> None:

    response = webhook_deliver(body)  # applied as a worker would
    assert response.status_code == 202, response.content


def test_it_reads_once_per_ticket_version(remote: ZendeskStandIn) -> None:
    _post(zendesk_event(ticket_id="35436", organization_id="801", updated_at="2026-11-23T10:00:00Z"))
    ticket = Ticket.objects.get(external_id="35436")

    ticket = ticket_context_ensure(ticket=ticket)
    assert remote.paths() == READS
    ticket = ticket_context_ensure(ticket=ticket)
    assert remote.paths() == READS  # same version: nothing read again

    # The webhook says the ticket changed: the next look reads it again.
    _post(
        zendesk_event(
            event_id="evt-2", event_type="zen:event-type:ticket.priority_changed", ticket_id="35436",
            organization_id="801", updated_at="2026-11-23T10:20:00Z",
        )
    )  # fmt: skip
    remote.tickets["35436"]["updated_at"] = "2026-11-23T10:20:00Z"
    ticket_context_ensure(ticket=Ticket.objects.get(pk=ticket.pk))
    assert remote.paths() == READS * 2


def test_it_stores_the_requester_organization_and_comments_with_authors(remote: ZendeskStandIn) -> None:
    ticket = TicketFactory(external_id="35436", tenant_link=None, organization_id="", description="I cannot log in.")

    ticket = ticket_context_ensure(ticket=ticket)

    assert (ticket.requester_id, ticket.requester_name, ticket.requester_email, ticket.requester_locale) == (
        "701",
        "Olivia Park",
        "ops@initech.example",
        "en-US",
    )
    assert (ticket.organization_id, ticket.organization_name, ticket.organization_external_id) == (
        "801",
        "Initech Payroll",
        "ext-initech",
    )
    assert ticket.context_version == "2026-11-23T10:00:00+00:00"
    # The first comment is the description, which the ticket already holds.
    [comment] = ticket.comments.all()
    assert (comment.body, comment.public, comment.author_kind, comment.author_name, comment.attachments) == (
        "Checking.",
        False,
        "human",
        "Sam Support",
        ["trace.txt"],
    )
    assert comment.created_at.isoformat() == "2026-11-23T10:02:00+00:00"
    assert AuditEvent.objects.filter(verb="ticket.context_synced", object_id=str(ticket.pk)).count() == 1


def test_it_resolves_the_tenant_from_an_organization_field(remote: ZendeskStandIn, settings) -> None:
    settings.ZENDESK_TENANT_FROM = "organization_field:tenant_id"
    ticket = TicketFactory(external_id="35436", tenant_link=None, organization_id="801")

    ticket = ticket_context_ensure(ticket=ticket)

    assert ticket.tenant_id == "initech"
    link = TenantLink.objects.get(organization_id="801")
    assert (link.source, link.synced_from, link.organization_name) == (
        "synced",
        "organization_field:tenant_id",
        "Initech Payroll",
    )
    assert AuditEvent.objects.filter(verb="tenant_link.synced", object_id=str(link.pk)).exists()
    # A later ticket of the organization is linked by the webhook already, without reading Zendesk.
    _post(zendesk_event(event_id="evt-9", ticket_id="35437", organization_id="801"))
    assert Ticket.objects.get(external_id="35437").tenant_id == "initech"


def test_it_resolves_the_tenant_from_the_external_id_and_follows_a_change(remote: ZendeskStandIn, settings) -> None:
    settings.ZENDESK_TENANT_FROM = "external_id"
    ticket = ticket_context_ensure(ticket=TicketFactory(external_id="35436", tenant_link=None, organization_id="801"))
    assert ticket.tenant_id == "ext-initech"

    remote.organizations["801"]["external_id"] = "initech-2"
    ticket = ticket_context_ensure(ticket=ticket, force=True)
    assert ticket.tenant_id == "initech-2"
    assert TenantLink.objects.count() == 1


def test_it_lets_a_manual_link_win(remote: ZendeskStandIn, settings) -> None:
    settings.ZENDESK_TENANT_FROM = "organization_field:tenant_id"
    manual = TenantLinkFactory(organization_id="801", tenant_id="initech-by-hand")
    ticket = ticket_context_ensure(ticket=TicketFactory(external_id="35436", tenant_link=None, organization_id="801"))
    assert ticket.tenant_link == manual
    manual.refresh_from_db()
    assert (manual.tenant_id, manual.source) == ("initech-by-hand", "manual")


@pytest.mark.parametrize("value", ["", "two words", "x" * 65, None, True])
def test_it_leaves_an_unresolvable_ticket_unlinked(remote: ZendeskStandIn, settings, value) -> None:
    settings.ZENDESK_TENANT_FROM = "organization_field:tenant_id"
    TenantLink.objects.create(organization_id="801", tenant_id="stale", source=TenantLink.Source.SYNCED)
    remote.organizations["801"]["organization_fields"] = {"tenant_id": value}

    ticket = ticket_context_ensure(ticket=TicketFactory(external_id="35436", tenant_link=None, organization_id="801"))

    assert ticket.tenant_id == ""
    assert not TenantLink.objects.filter(organization_id="801").exists()


def test_it_links_nothing_by_itself_when_no_source_is_configured(remote: ZendeskStandIn, settings) -> None:
    settings.ZENDESK_TENANT_FROM = ""
    ticket = ticket_context_ensure(ticket=TicketFactory(external_id="35436", tenant_link=None, organization_id="801"))
    assert ticket.tenant_id == ""
    assert not TenantLink.objects.exists()


def test_it_reads_the_requester_from_the_local_directory_without_zendesk(db: None) -> None:
    HelpdeskUser.objects.create(external_id="3600031", name="Olivia Park", email="ops@initech.example")
    ticket = TicketFactory(source=Ticket.Source.LOCAL, requester_id="3600031", description="I am ceo@evil.example")

    ticket = ticket_context_ensure(ticket=ticket)

    assert (ticket.requester_name, ticket.requester_email) == ("Olivia Park", "ops@initech.example")
    assert ticket.context_version == "local"


def _local_ticket(**fields) -> Ticket:
    HelpdeskUser.objects.create(external_id="3600031", name="Olivia Park", email="ops@initech.example", locale="en")
    link = TenantLinkFactory(organization_name="Initech")
    held = {
        "requester_name": "Olivia Park", "requester_email": "ops@initech.example", "requester_locale": "en",
        "organization_name": "Initech",
    }  # fmt: skip
    return TicketFactory(source=Ticket.Source.LOCAL, requester_id="3600031", tenant_link=link, **{**held, **fields})


def test_it_records_a_local_read_that_changes_nothing_in_one_update(django_assert_num_queries) -> None:
    ticket = _local_ticket()
    with django_assert_num_queries(2):  # the directory's requester, then the version read
        read = ticket_context_ensure(ticket=ticket)
    assert read is ticket and ticket.context_version == "local" and ticket.context_fetched_at is not None
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.context_version, stored.context_fetched_at) == ("local", ticket.context_fetched_at)
    assert not AuditEvent.objects.filter(verb="ticket.context_synced").exists()
    with django_assert_num_queries(0):  # read once
        ticket_context_ensure(ticket=ticket)


@pytest.mark.parametrize(
    "fields", [{"requester_email": "old@initech.example"}, {"organization_name": "Initech Old"}, {"synced": True}]
)
def test_it_applies_a_local_read_that_changes_something_under_the_tickets_lock(fields, settings) -> None:
    settings.ZENDESK_TENANT_FROM = ""
    ticket = _local_ticket(**{name: value for name, value in fields.items() if name != "synced"})
    if "synced" in fields:  # a synced link is the sync's to keep or drop: never the shortcut's
        TenantLink.objects.filter(pk=ticket.tenant_link_id).update(source=TenantLink.Source.SYNCED)
        ticket = Ticket.objects.select_related("tenant_link").get(pk=ticket.pk)
    read = ticket_context_ensure(ticket=ticket)
    assert read is not ticket and read.context_version == "local"
    assert (read.requester_email, read.organization_name) == ("ops@initech.example", "Initech")
    if "synced" in fields:
        assert read.tenant_link is None  # no tenant source is configured: a synced link no longer holds
    else:
        assert AuditEvent.objects.get(verb="ticket.context_synced").payload["fields"] == sorted(fields)


def test_it_reads_a_changed_ticket_in_the_background_when_the_webhook_says_so(
    remote: ZendeskStandIn, broker, django_capture_on_commit_callbacks
) -> None:
    from agent.models import AgentRun
    from tests.support import queued_task_messages
    from tickets.tasks import ticket_context_refresh_task

    with django_capture_on_commit_callbacks(execute=True):
        _post(zendesk_event(ticket_id="35436", organization_id="801", updated_at="2026-11-23T10:00:00Z"))
    ticket = Ticket.objects.get(external_id="35436")
    assert AgentRun.objects.filter(ticket=ticket).exists()  # the agent works on this ticket
    broker.flushdb()  # the run's own task: it reads the ticket when it starts
    assert remote.requests == []

    changed = zendesk_event(
        event_id="evt-3", event_type="zen:event-type:ticket.priority_changed", ticket_id="35436",
        organization_id="801", updated_at="2026-11-23T10:30:00Z",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _post(changed)
    [message] = queued_task_messages(broker)
    assert (message["headers"]["task"], message["headers"]["argsrepr"]) == (
        "tickets.tasks.ticket_context_refresh_task",
        f"({ticket.pk},)",
    )
    remote.tickets["35436"]["updated_at"] = "2026-11-23T10:30:00Z"
    assert ticket_context_refresh_task.apply(args=[ticket.pk]).get() == "read"
    assert remote.paths() == READS
    assert ticket_context_refresh_task.apply(args=[ticket.pk]).get() == "read"
    assert remote.paths() == READS  # the version held is current: nothing read again

    broker.flushdb()
    with django_capture_on_commit_callbacks(execute=True):
        _post({**changed, "id": "evt-4"})  # the same version again
    assert queued_task_messages(broker) == []
