"""search_logs: the company's application logs in CloudWatch Logs, through boto3.

The tool always searches the ticket's own tenant (ctx.tenant_id): the model has no argument that could name
another tenant's logs. Where the tenant is, is configuration (LOGS_TENANT_BINDING): the log stream's name
("stream", FilterLogEvents on that one stream), or a field of every log event ("field": a CloudWatch Logs
Insights query whose first filter is LOGS_TENANT_FIELD = the tenant). Anything that answers CloudWatch Logs' API
can stand in for it through boto3's own AWS_ENDPOINT_URL_CLOUDWATCH_LOGS (the sandbox company does, for the demo
and the tests), so there is one code path and no product module knows the stand-in.
"""

from __future__ import annotations

import re
import time
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
from agentconsole.errors import ApplicationError

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


INSIGHTS_PATTERN_UNSUPPORTED = (
    'With the tenant as a log field, the filter pattern is a list of terms: words, "quoted phrases", ?any-of '
    "and -none-of terms. JSON ({ $.x = 1 }), space-delimited ([a, b]) and regex (%...%) patterns are not supported."
)
INSIGHTS_POLL_SECONDS = 0.5
INSIGHTS_WAIT_SECONDS = 20.0
INSIGHTS_NOT_DONE = "The CloudWatch Logs Insights query did not finish ({status}); try a narrower window."
_TERM = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|(\S+))')


class InsightsFailed(ApplicationError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _insights_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def insights_query(pattern: str, *, tenant_id: str, limit: int) -> str | Observation:
    """A Logs Insights query for the ticket's tenant (always the first filter) and a filter pattern's terms."""
    text = pattern.strip()
    if text.startswith(("{", "[", "%")) or text.count('"') % 2:
        return Observation.failure(ErrorType.INVALID_ARGUMENTS, INSIGHTS_PATTERN_UNSUPPORTED)
    required, any_of, none_of = [], [], []
    for sign, phrase, word in _TERM.findall(text):
        term = phrase if phrase else word
        like = "not like" if sign == "-" else "like"
        {"": required, "?": any_of, "-": none_of}[sign].append(f"@message {like} {_insights_string(term)}")
    lines = [
        "fields @timestamp, @message, @logStream",
        f"| filter {settings.LOGS_TENANT_FIELD} = {_insights_string(tenant_id)}",
    ]
    if required:
        lines.append("| filter " + " and ".join(required))
    if any_of:
        lines.append("| filter (" + " or ".join(any_of) + ")")
    lines += [f"| filter {term}" for term in none_of]
    lines += ["| sort @timestamp asc", f"| limit {limit + 1}"]
    return "\n".join(lines)


def _insights_events(client: Any, request: dict[str, Any], query: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    started = client.start_query(
        logGroupName=request["log_group_name"],
        startTime=request["start_time"] // 1000,
        endTime=request["end_time"] // 1000,
        queryString=query,
        limit=limit + 1,
    )
    deadline = time.monotonic() + INSIGHTS_WAIT_SECONDS
    while True:
        answer = client.get_query_results(queryId=started["queryId"])
        status = answer.get("status")
        if status == "Complete":
            break
        if status in ("Failed", "Cancelled", "Timeout", "Unknown") or time.monotonic() > deadline:
            if status in ("Running", "Scheduled"):
                client.stop_query(queryId=started["queryId"])
            raise InsightsFailed(INSIGHTS_NOT_DONE.format(status=status), retryable=status != "Failed")
        time.sleep(INSIGHTS_POLL_SECONDS)
    events = []
    for row in answer.get("results") or []:
        fields = {cell.get("field"): cell.get("value") for cell in row}
        moment = datetime.strptime(fields.get("@timestamp", "1970-01-01 00:00:00.000"), "%Y-%m-%d %H:%M:%S.%f")
        events.append(
            {"timestamp": int(moment.replace(tzinfo=UTC).timestamp() * 1000), "message": fields.get("@message", "")}
        )
    return events[:limit], len(events) > limit


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

    def template_quote(self, arg: str, text: str) -> str:
        """A runbook's filter pattern holds filled-in values inside quoted terms ("{requester_email}")."""
        return text.replace("\\", "\\\\").replace('"', '\\"') if arg == "query" else text

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
        if settings.LOGS_TENANT_BINDING == "field":
            outcome = self._search_insights(request, tenant_id=ctx.tenant_id)
        else:
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

    def _search_insights(
        self, request: dict[str, Any], *, tenant_id: str
    ) -> tuple[list[dict[str, Any]], bool] | Observation:
        query = insights_query(request["filter_pattern"], tenant_id=tenant_id, limit=request["limit"])
        if isinstance(query, Observation):
            return query
        return self._cloudwatch_call(lambda client: _insights_events(client, request, query, request["limit"]))

    def _search_cloudwatch(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], bool] | Observation:
        def search(client: Any) -> tuple[list[dict[str, Any]], bool]:

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

        return self._cloudwatch_call(search)

    def _cloudwatch_call(self, search: Callable[[Any], Any]) -> tuple[list[dict[str, Any]], bool] | Observation:
        try:
            return search(cloudwatch_logs_client())
        except InsightsFailed as exc:
            return Observation.failure(ErrorType.UPSTREAM, exc.message, retryable=exc.retryable)
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
