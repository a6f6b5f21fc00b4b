"""Slack, through slack-sdk: an incoming webhook (its URL fixes the channel) or a bot token (chat.postMessage to
a channel). The only module that talks to Slack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

SLACK_HTTP_ERROR = "Slack answered HTTP {status}: {body}"
SLACK_API_ERROR = "Slack refused the message: {error}"
SLACK_UNREACHABLE = "Slack could not be reached: {error}"


class SlackError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class SlackMessage:
    text: str  # the fallback shown in notifications and by clients without blocks
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Slack's mrkdwn control characters. Ticket text is untrusted: escaped, it can neither fake a link nor
    mention @channel."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_destination(*, channel: str = "") -> str:
    """Where a message would go ("webhook", or the bot's channel), or "" when Slack is not configured."""
    if settings.SLACK_WEBHOOK_URL:
        return "webhook"
    if settings.SLACK_BOT_TOKEN and (channel or settings.SLACK_CHANNEL):
        return channel or settings.SLACK_CHANNEL
    return ""


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def slack_post(message: SlackMessage, *, channel: str = "") -> str:
    """Post the message; returns where it went. Raises SlackError."""
    from slack_sdk.errors import SlackApiError, SlackClientError
    from slack_sdk.web import WebClient
    from slack_sdk.webhook import WebhookClient

    destination = slack_destination(channel=channel)
    try:
        if destination == "webhook":
            response = WebhookClient(settings.SLACK_WEBHOOK_URL, timeout=settings.SLACK_TIMEOUT_SECONDS).send(
                text=message.text, blocks=message.blocks
            )
            if response.status_code != 200:
                raise SlackError(
                    SLACK_HTTP_ERROR.format(status=response.status_code, body=(response.body or "")[:200]),
                    retryable=_retryable(response.status_code),
                )
            return destination
        client = WebClient(
            token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL, timeout=settings.SLACK_TIMEOUT_SECONDS
        )
        client.chat_postMessage(channel=destination, text=message.text, blocks=message.blocks, unfurl_links=False)
        return destination
    except SlackApiError as exc:
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        raise SlackError(SLACK_API_ERROR.format(error=error or f"HTTP {status}"), retryable=_retryable(status)) from exc
    except (SlackClientError, OSError) as exc:  # URLError and timeouts are OSErrors
        raise SlackError(SLACK_UNREACHABLE.format(error=exc), retryable=True) from exc
