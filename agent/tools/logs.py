"""search_logs: the company's application logs in CloudWatch Logs, through boto3.

The log stream is the tenant id, and the tool always searches the stream of the ticket's own tenant
(ctx.tenant_id): the model has no argument that could name another tenant's logs. Anything that answers
CloudWatch Logs' API can stand in for it through boto3's own AWS_ENDPOINT_URL_CLOUDWATCH_LOGS (the sandbox company
does, for the demo and the tests), so there is one code path and no product module knows the stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field

from agent.aws import aws_client
from agent.policy import Risk
from agent.tools import register
from agent.tools._summary import clip, clock, count, when
from agent.tools.base import ErrorType, Observation, Tool, ToolContext

NO_TENANT = "This ticket is not linked to a tenant, so there are no logs to search."
NO_LOG_GROUP = "LOGS_GROUP_NAME is not set, so there are no logs to search: an operator must configure it."
LOGS_NOT_FOUND = "No logs found for this tenant: {message}"
BAD_PATTERN = "The logs backend rejected the request: {message} Check the filter pattern syntax."
LOGS_UPSTREAM = "CloudWatch Logs failed ({code}): {message}"
LOGS_UNREACHABLE = "CloudWatch Logs could not be reached: {error}"

MAX_PAGES = 5  # FilterLogEvents may return short pages with a nextToken; follow a few, never forever
MAX_MESSAGE_CHARS = 500
_RETRYABLE_CODES = {"ThrottlingException", "ServiceUnavailableException", "LimitExceededException"}


def _boto_config() -> Config:
    # Adaptive retry mode adds client-side rate limiting on throttling: FilterLogEvents has a low account quota.
    return Config(
        region_name=settings.AWS_REGION,
        retries={"mode": "adaptive", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=20,
    )


def cloudwatch_logs_client() -> Any:
    """A CloudWatch Logs client: the standard credential chain, or the AGENT_ROLE_ARN role assumed through it."""
    return aws_client("logs", config=_boto_config())


class SearchLogsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(
        default="",
        max_length=1024,
        description=(
            "A CloudWatch Logs filter pattern: a word (ERROR), several words that must all appear (ERROR timeout), "
            'an exact phrase in double quotes ("lock timeout"), or a JSON pattern ({ $.level = "ERROR" }). '
            "Empty matches every event."
        ),
    )
    minutes: int = Field(default=60, ge=1, le=10080, description="How far back to search, in minutes (max 7 days).")
    limit: int = Field(default=20, ge=1, le=100, description="At most this many events are returned, oldest first.")


PageFetcher = Callable[[str | None], dict[str, Any]]


def _collect(fetch: PageFetcher, limit: int) -> tuple[list[dict[str, Any]], bool]:
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = fetch(token)
        events.extend(page.get("events") or [])
        token = page.get("nextToken")
        if len(events) >= limit or not token:
            break
    return events[:limit], bool(token) or len(events) > limit


def _summarise(event: dict[str, Any]) -> dict[str, str]:
    message = str(event.get("message", "")).strip()
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    moment = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, tz=UTC)
    return {"time": moment.isoformat(timespec="seconds"), "message": message}


@register
class SearchLogs(Tool):
    name = "search_logs"
    description = (
        "Search this ticket's tenant's application logs (only that tenant's) with a CloudWatch Logs filter "
        "pattern over the last `minutes`. Returns matching events oldest first as {time, message}, and "
        "more_available when there were more matches than `limit`: then narrow the pattern or the window."
    )
    args_schema = SearchLogsArgs
    risk = Risk.READ
    tenant_arg = ""  # bound by the context: the arguments name no tenant

    def summarize(self, args: dict[str, Any], data: Any) -> str:
        if not isinstance(data, dict):
            return super().summarize(args, data)
        pattern = data.get("filter_pattern") or "everything"
        minutes = args.get("minutes")
        window = f"last {minutes} min" if minutes else f"since {when(data.get('from'))}"
        events = list(data.get("events") or [])
        if not events:
            return clip(f"logs matching {pattern} ({window}): no lines")
        more = " (more available)" if data.get("more_available") else ""
        first, last = events[0], events[-1]
        span = when(last.get("time"))
        if len(events) > 1:
            span = f"from {clock(first.get('time'))} to {clock(last.get('time'))} UTC"
        found = f"{count(len(events), 'line')}{more}"
        latest = clip(str(last.get("message", "")), 140)
        return clip(f"logs matching {pattern} ({window}): {found}, {span}; latest: {latest}")

    def run(self, args: SearchLogsArgs, ctx: ToolContext) -> Observation:
        if not ctx.tenant_id:
            return Observation.failure(ErrorType.REFUSED, NO_TENANT)
        if not settings.LOGS_GROUP_NAME:
            return Observation.failure(ErrorType.INTERNAL, NO_LOG_GROUP)
        end = datetime.now(UTC)
        start = end - timedelta(minutes=args.minutes)
        request = {
            "log_group_name": settings.LOGS_GROUP_NAME,
            "log_stream_names": [ctx.tenant_id],
            "filter_pattern": args.query,
            "start_time": int(start.timestamp() * 1000),
            "end_time": int(end.timestamp() * 1000),
            "limit": args.limit,
        }
        outcome = self._search_cloudwatch(request)
        if isinstance(outcome, Observation):
            return outcome
        events, more = outcome
        return Observation.success(
            {
                "tenant_id": ctx.tenant_id,
                "filter_pattern": args.query,
                "from": start.isoformat(timespec="seconds"),
                "to": end.isoformat(timespec="seconds"),
                "count": len(events),
                "more_available": more,
                "events": [_summarise(event) for event in events],
            },
            backend="cloudwatch",
            log_group=settings.LOGS_GROUP_NAME,
        )

    def _search_cloudwatch(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], bool] | Observation:
        try:
            client = cloudwatch_logs_client()

            def fetch(token: str | None) -> dict[str, Any]:
                params: dict[str, Any] = {
                    "logGroupName": request["log_group_name"],
                    "logStreamNames": request["log_stream_names"],
                    "startTime": request["start_time"],
                    "endTime": request["end_time"],
                    "limit": request["limit"],
                }
                if request["filter_pattern"]:
                    params["filterPattern"] = request["filter_pattern"]
                if token:
                    params["nextToken"] = token
                return client.filter_log_events(**params)

            return _collect(fetch, request["limit"])
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "Unknown"), error.get("Message", "")
            if code == "ResourceNotFoundException":
                return Observation.failure(ErrorType.NOT_FOUND, LOGS_NOT_FOUND.format(message=message))
            if code == "InvalidParameterException":
                return Observation.failure(ErrorType.INVALID_ARGUMENTS, BAD_PATTERN.format(message=message))
            return Observation.failure(
                ErrorType.UPSTREAM,
                LOGS_UPSTREAM.format(code=code, message=message),
                retryable=code in _RETRYABLE_CODES,
                error_code=code,
            )
        except BotoCoreError as exc:
            transient = isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError)
            return Observation.failure(ErrorType.UPSTREAM, LOGS_UNREACHABLE.format(error=exc), retryable=transient)
