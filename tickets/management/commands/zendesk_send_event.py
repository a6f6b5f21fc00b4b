from __future__ import annotations

import json
import uuid

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tickets.zendesk_webhook import (
    EVENT_TICKET_CREATED,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)


class Command(BaseCommand):
    help = "Post a Zendesk ticket.created event, signed with ZENDESK_WEBHOOK_SECRET, to a running console."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--url", default="http://127.0.0.1:8000/api/webhooks/zendesk")
        parser.add_argument("--event-id", default="", help="Reuse an id to see idempotency at work.")
        parser.add_argument("--ticket-id", default="")
        parser.add_argument("--organization-id", default="360001")
        parser.add_argument("--subject", default="Dashboard shows stale data")
        parser.add_argument("--description", default="Numbers stopped updating this morning.")
        parser.add_argument("--tag", action="append", default=[])

    def handle(self, *args: object, **options: str) -> None:
        if not settings.ZENDESK_WEBHOOK_SECRET:
            raise CommandError("ZENDESK_WEBHOOK_SECRET is not set; the console would refuse the event.")
        event_id = options["event_id"] or str(uuid.uuid4())
        ticket_id = options["ticket_id"] or str(uuid.uuid4().int % 10_000_000)
        body = json.dumps(
            {
                "id": event_id,
                "type": EVENT_TICKET_CREATED,
                "account_id": 1,
                "time": timezone.now().isoformat(),
                "subject": f"zen:ticket:{ticket_id}",
                "detail": {
                    "id": ticket_id,
                    "subject": options["subject"],
                    "description": options["description"],
                    "organization_id": options["organization_id"],
                    "requester_id": "1",
                    "status": "NEW",
                    "priority": "NORMAL",
                    "tags": options["tag"],
                },
            }
        ).encode()
        timestamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: compute_signature(secret=settings.ZENDESK_WEBHOOK_SECRET, timestamp=timestamp, body=body),
        }
        try:
            response = httpx.post(options["url"], content=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            raise CommandError(f"Could not reach {options['url']}: {exc}") from exc
        self.stdout.write(f"event {event_id} ticket {ticket_id}: HTTP {response.status_code} {response.text}")
