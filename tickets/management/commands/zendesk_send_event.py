from __future__ import annotations

import json
import uuid

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tickets.zendesk_webhook import (
    EVENT_COMMENT_ADDED,
    EVENT_TICKET_CREATED,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)


class Command(BaseCommand):
    help = (
        "Post a Zendesk event, signed with ZENDESK_WEBHOOK_SECRET, to a running console: a new ticket, or (with "
        "--comment) a comment on one, which starts a follow-up run when the ticket's run has ended."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--url", default="http://127.0.0.1:8000/api/webhooks/zendesk")
        parser.add_argument("--event-id", default="", help="Reuse an id to see idempotency at work.")
        parser.add_argument("--ticket-id", default="")
        parser.add_argument("--organization-id", default="360001")
        parser.add_argument("--subject", default=None, help="Default for a new ticket: Dashboard shows stale data")
        parser.add_argument("--description", default=None)
        parser.add_argument("--tag", action="append", default=None)
        parser.add_argument(
            "--requester-id",
            default="",
            help="Default: the demo's requester of the organization (its id followed by 1).",
        )
        parser.add_argument("--comment", default="", help="Send ticket.comment_added with this body instead.")
        parser.add_argument("--comment-id", default="", help="Reuse an id to see a duplicate comment ignored.")
        parser.add_argument("--private", action="store_true", help="The comment is a private note.")
        parser.add_argument("--staff", action="store_true", help="The comment's author is support staff.")

    @staticmethod
    def _ticket_fields(options: dict) -> dict:
        """A new ticket gets a subject, description, priority and tags; a comment changes only what is given."""
        if options["comment"]:
            given = {"subject": options["subject"], "description": options["description"], "tags": options["tag"]}
            return {key: value for key, value in given.items() if value is not None}
        return {
            "subject": options["subject"] or "Dashboard shows stale data",
            "description": options["description"] or "Numbers stopped updating this morning.",
            "priority": "NORMAL",
            "tags": options["tag"] or [],
        }

    def handle(self, *args: object, **options: str) -> None:
        if not settings.ZENDESK_WEBHOOK_SECRET:
            raise CommandError("ZENDESK_WEBHOOK_SECRET is not set; the console would refuse the event.")
        event_id = options["event_id"] or str(uuid.uuid4())
        ticket_id = options["ticket_id"] or str(uuid.uuid4().int % 10_000_000)
        if options["comment"] and not options["ticket_id"]:
            raise CommandError("--comment needs --ticket-id: the ticket the comment is on.")
        requester_id = options["requester_id"] or f"{options['organization_id']}1"
        event: dict = {}
        if options["comment"]:
            event = {
                "comment": {
                    "id": options["comment_id"] or str(uuid.uuid4().int % 10_000_000_000),
                    "body": options["comment"],
                    "is_public": not options["private"],
                    "author": {"id": "777" if options["staff"] else requester_id, "is_staff": options["staff"]},
                }
            }
        body = json.dumps(
            {
                "id": event_id,
                "type": EVENT_COMMENT_ADDED if options["comment"] else EVENT_TICKET_CREATED,
                "account_id": 1,
                "time": timezone.now().isoformat(),
                "subject": f"zen:ticket:{ticket_id}",
                "detail": {
                    "id": ticket_id,
                    "organization_id": options["organization_id"],
                    "requester_id": requester_id,
                    "status": "OPEN" if options["comment"] else "NEW",
                    "updated_at": timezone.now().isoformat(),
                    **self._ticket_fields(options),
                },
                "event": event,
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
