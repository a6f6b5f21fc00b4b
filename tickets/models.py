from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TenantLink(models.Model):
    """Maps a helpdesk organization to a tenant in the company's systems.

    This mapping is the only source of a ticket's tenant: never the ticket's text. A manual link (made by an admin)
    always wins; a synced link is derived from the organization's external id or one of its fields
    (ZENDESK_TENANT_FROM) each time the ticket is read from Zendesk.
    """

    class Source(models.TextChoices):
        MANUAL = "manual", "Manual (an admin)"
        SYNCED = "synced", "Synced from the helpdesk organization"

    organization_id = models.CharField(max_length=64, unique=True)
    organization_name = models.CharField(max_length=200, blank=True)
    tenant_id = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    synced_from = models.CharField(
        max_length=200, blank=True, help_text="For a synced link: the organization attribute it was read from."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization_name", "organization_id"]

    def __str__(self) -> str:
        return f"{self.organization_name or self.organization_id} -> {self.tenant_id}"


class Ticket(models.Model):
    class Source(models.TextChoices):
        ZENDESK = "zendesk", "Zendesk"
        LOCAL = "local", "Local"

    class Status(models.TextChoices):
        NEW = "new", "New"
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        HOLD = "hold", "On hold"
        SOLVED = "solved", "Solved"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        NONE = "", "None"
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"
        URGENT = "urgent", "Urgent"

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ZENDESK)
    external_id = models.CharField(max_length=64)
    subject = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    requester_id = models.CharField(max_length=64, blank=True)
    # The requester as the helpdesk knows them (Zendesk's user record, or the local directory): the agent's only
    # source of the customer's identity. Never parsed from the ticket's text.
    requester_name = models.CharField(max_length=200, blank=True)
    requester_email = models.EmailField(max_length=254, blank=True)
    requester_locale = models.CharField(max_length=32, blank=True)
    requester_fields = models.JSONField(default=dict, blank=True, help_text="The requester's user fields.")
    organization_id = models.CharField(max_length=64, blank=True, db_index=True)
    organization_name = models.CharField(max_length=200, blank=True)
    organization_external_id = models.CharField(max_length=200, blank=True)
    organization_fields = models.JSONField(default=dict, blank=True)
    custom_fields = models.JSONField(
        default=list, blank=True, help_text='Ticket custom fields: [{"id", "title", "value"}].'
    )
    tenant_link = models.ForeignKey(
        TenantLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    priority = models.CharField(max_length=16, choices=Priority.choices, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    group_id = models.CharField("group / pod", max_length=64, blank=True)
    raw_payload = models.JSONField(default=dict, blank=True)
    external_created_at = models.DateTimeField(null=True, blank=True)
    external_updated_at = models.DateTimeField(null=True, blank=True)
    # The ticket version (Zendesk's updated_at) the requester, organization, fields and comments were last read at.
    context_version = models.CharField(max_length=64, blank=True)
    context_fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    solved_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
        help_text="The reviewer working this ticket in the console (a claim, or a take-over).",
    )
    assigned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Keyset pagination of the tickets view walks these in either direction.
        indexes = [
            models.Index(fields=["created_at", "id"], name="ticket_created_keyset"),
            models.Index(fields=["updated_at", "id"], name="ticket_updated_keyset"),
            models.Index(fields=["external_id"], name="ticket_external_id"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="ticket_source_external_id_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.external_id} {self.subject}"

    @property
    def tenant_id(self) -> str:
        return self.tenant_link.tenant_id if self.tenant_link_id else ""


class TicketComment(models.Model):
    class AuthorKind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent (AI)"
        HUMAN = "human", "Human staff"

    class Delivery(models.TextChoices):
        SENT = "sent", "In the helpdesk"
        PENDING = "pending", "Being posted"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    external_id = models.CharField(max_length=64, blank=True)
    body = models.TextField(blank=True)  # a helpdesk comment can be attachments only
    public = models.BooleanField()
    author_kind = models.CharField(max_length=16, choices=AuthorKind.choices)
    author_id = models.CharField(max_length=64, blank=True)
    author_name = models.CharField(max_length=200, blank=True)
    attachments = models.JSONField(default=list, blank=True, help_text="Names of the attached files.")
    # Our own comments carry a marker, stored before the comment is posted (the intent) and written into its
    # body, so a retry after a crash finds it instead of posting twice, and the webhook's echo is recognised.
    marker = models.CharField(max_length=32, blank=True)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.SENT)
    # When the helpdesk says it was written (comments synced later keep their place in the conversation).
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket", "external_id"],
                condition=~models.Q(external_id=""),
                name="ticket_comment_external_id_unique",
            ),
            models.UniqueConstraint(
                fields=["ticket", "marker"], condition=~models.Q(marker=""), name="ticket_comment_marker_unique"
            ),
        ]

    def __str__(self) -> str:
        visibility = "public" if self.public else "private"
        return f"{visibility} {self.author_kind} comment on {self.ticket_id}"


class WebhookEvent(models.Model):
    """Every delivery we accepted, stored raw. (source, event_id) is unique: that is the idempotency key."""

    source = models.CharField(max_length=16, default=Ticket.Source.ZENDESK)
    event_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=128)
    payload = models.JSONField()
    ticket = models.ForeignKey(Ticket, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events")
    handled = models.BooleanField(default=False, help_text="False for event types we store but do not act on.")
    ignored_reason = models.CharField(
        max_length=200, blank=True, help_text="Why a ticket event was stored but not applied (e.g. a closed ticket)."
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The webhook only stores the event and sends a task message; a worker applies it (agent.services.intake).
    # Unprocessed events are the outbox: the sweep sends again any whose message went missing.
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker applied the event.")
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep last sent the event again (empty: only the webhook did)."
    )
    redispatches = models.PositiveIntegerField(
        default=0, db_default=0, help_text="How many times the sweep sent the event again."
    )  # db_default: the webhook's INSERT names only the columns it sets
    redispatch_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The sweep's next try, later after each one (an event that keeps failing is retried, never dropped).",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="webhook_event_source_id_unique")]
        indexes = [
            models.Index(
                fields=["received_at"], name="webhook_event_unprocessed", condition=models.Q(processed_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.event_id} {self.event_type}"


class HelpdeskUser(models.Model):
    """A person the local helpdesk knows: the requesters of tickets the console serves without Zendesk (the demo
    seeds them). With Zendesk configured, requesters are read from Zendesk's API instead."""

    external_id = models.CharField(max_length=64, unique=True, help_text="The requester id tickets carry.")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    locale = models.CharField(max_length=32, blank=True)
    fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.name or self.email or self.external_id} ({self.external_id})"
