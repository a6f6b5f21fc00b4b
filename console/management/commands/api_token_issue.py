from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.auth import api_token_issue

UNKNOWN_USER = "No user named {username}."


class Command(BaseCommand):
    help = "Issue a personal API token for a user and print it once; only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The username the token acts as.")
        parser.add_argument("--name", required=True, help="What the token is for.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(UNKNOWN_USER.format(username=options["user"]))
        api_token, token = api_token_issue(user=user, name=options["name"])
        self.stderr.write(f"Token {api_token.prefix}… '{api_token.name}' for {user}. It is shown only once:")
        self.stdout.write(token)
