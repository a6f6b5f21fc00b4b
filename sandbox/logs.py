"""The company's logs as the sandbox plays them: CloudWatch Logs' `filter_log_events`, answered from LogEvent rows.

The answer has exactly the shape boto3 returns, so the console's logs tool reads either backend the same way.
The log stream name is the tenant id. Filter patterns follow CloudWatch's syntax for unstructured events:

- `ERROR cache_error`   every term must appear (case-sensitive substring)
- `"stale entry"`       a double-quoted phrase is one term, spaces included
- `?ERROR ?WARN`        any one of the `?` terms must appear
- `ERROR -timeout`      a `-` term must not appear
- empty                 every event matches

Mixed patterns combine the three: all plain terms, at least one `?` term (if any), none of the `-` terms.
JSON (`{...}`), space-delimited (`[...]`) and regex (`%...%`) patterns are refused, not silently misread.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from agentconsole.errors import ApplicationError
from sandbox.models import LogEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LIMIT = 10_000
MAX_STREAMS = 100

LOG_GROUP_REQUIRED = "log_group_name must be a non-empty string."
STREAMS_REQUIRED = "log_stream_names must name 1 to {maximum} log streams."
LIMIT_OUT_OF_RANGE = "limit must be between 1 and {maximum}, not {limit!r}."
TIME_INVALID = "{name} must be epoch milliseconds (an integer), not {value!r}."
NEXT_TOKEN_INVALID = "The nextToken is not valid for this query."  # noqa: S105 (a message, not a secret)
PATTERN_UNTERMINATED_QUOTE = "The filter pattern has an unterminated double quote."
PATTERN_EMPTY_TERM = "The filter pattern has a '?' or '-' with no term after it."
PATTERN_TRAILING_QUOTE = "A quoted term in the filter pattern must be followed by a space or the end."
PATTERN_UNSUPPORTED = "Only term patterns are supported here; JSON, space-delimited and regex patterns are not."


class InvalidParameterException(ApplicationError):
    """A bad argument; named as CloudWatch Logs names the same error, so callers can treat both backends alike."""


@dataclass(frozen=True)
class FilterPattern:
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    def matches(self, message: str) -> bool:
        return (
            all(term in message for term in self.required)
            and (not self.any_of or any(term in message for term in self.any_of))
            and not any(term in message for term in self.excluded)
        )

    def prefilter(self) -> Q:
        """A database filter that keeps at least every match (exactly them on PostgreSQL, more on SQLite, whose
        LIKE ignores case); `matches` decides."""
        query = Q()
        for term in self.required:
            query &= Q(message__contains=term)
        if self.any_of:
            any_query = Q()
            for term in self.any_of:
                any_query |= Q(message__contains=term)
            query &= any_query
        return query


def parse_filter_pattern(pattern: str) -> FilterPattern:
    """Parse CloudWatch's term syntax (see the module docstring); raise InvalidParameterException otherwise."""
    text = pattern.strip()
    if text[:1] in {"{", "[", "%"}:
        raise InvalidParameterException(PATTERN_UNSUPPORTED)
    groups: dict[str, list[str]] = {"": [], "?": [], "-": []}
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        prefix = text[position] if text[position] in "?-" else ""
        position += len(prefix)
        if position < len(text) and text[position] == '"':
            end = text.find('"', position + 1)
            if end == -1:
                raise InvalidParameterException(PATTERN_UNTERMINATED_QUOTE)
            term = text[position + 1 : end]
            position = end + 1
            if position < len(text) and not text[position].isspace():
                raise InvalidParameterException(PATTERN_TRAILING_QUOTE)
        else:
            end = position
            while end < len(text) and not text[end].isspace():
                end += 1
            term = text[position:end]
            position = end
            if not term and prefix:
                raise InvalidParameterException(PATTERN_EMPTY_TERM)
        groups[prefix].append(term)
    return FilterPattern(required=tuple(groups[""]), any_of=tuple(groups["?"]), excluded=tuple(groups["-"]))


def _epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _from_epoch_ms(name: str, value: int) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterException(TIME_INVALID.format(name=name, value=value))
    return EPOCH + timedelta(milliseconds=value)


def _query_fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _encode_token(event: LogEvent, fingerprint: str) -> str:
    raw = json.dumps({"t": event.timestamp.isoformat(), "id": event.pk, "q": fingerprint})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str, fingerprint: str) -> Q:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = datetime.fromisoformat(data["t"])
        last_id = int(data["id"])
        valid = data["q"] == fingerprint and after.tzinfo is not None
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidParameterException(NEXT_TOKEN_INVALID)
    return Q(timestamp__gt=after) | Q(timestamp=after, id__gt=last_id)


def _event(event: LogEvent) -> dict[str, Any]:
    timestamp = _epoch_ms(event.timestamp)
    return {
        "logStreamName": event.tenant_id,
        "timestamp": timestamp,
        "message": event.message,
        # The sandbox has no separate ingestion clock; CloudWatch's is the arrival time, usually just after.
        "ingestionTime": timestamp,
        "eventId": str(event.pk),
    }


def filter_log_events(
    *,
    log_group_name: str,
    log_stream_names: list[str],
    filter_pattern: str = "",
    start_time: int | None = None,
    end_time: int | None = None,
    limit: int = 100,
    next_token: str | None = None,
) -> dict:
    """Search one log group's streams (tenant ids), oldest first, `limit` events a page, as CloudWatch does.

    start_time and end_time are inclusive epoch milliseconds. The response carries "nextToken" only when more
    matching events follow; pass it back with the same arguments for the next page.
    """
    if not isinstance(log_group_name, str) or not log_group_name:
        raise InvalidParameterException(LOG_GROUP_REQUIRED)
    streams = list(dict.fromkeys(log_stream_names or []))
    if not streams or len(streams) > MAX_STREAMS or not all(isinstance(name, str) and name for name in streams):
        # CloudWatch refuses an empty list too; searching every tenant's stream would cross tenants.
        raise InvalidParameterException(STREAMS_REQUIRED.format(maximum=MAX_STREAMS))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterException(LIMIT_OUT_OF_RANGE.format(maximum=MAX_LIMIT, limit=limit))
    pattern = parse_filter_pattern(filter_pattern or "")

    events = LogEvent.objects.filter(log_group=log_group_name, tenant_id__in=streams).filter(pattern.prefilter())
    if start_time is not None:
        events = events.filter(timestamp__gte=_from_epoch_ms("start_time", start_time))
    if end_time is not None:
        # Inclusive to the millisecond, while the rows keep microseconds.
        events = events.filter(timestamp__lt=_from_epoch_ms("end_time", end_time) + timedelta(milliseconds=1))
    fingerprint = _query_fingerprint(log_group_name, sorted(streams), filter_pattern, start_time, end_time)
    if next_token:
        events = events.filter(_decode_token(next_token, fingerprint))

    page: list[LogEvent] = []
    more = False
    for event in events.order_by("timestamp", "id").iterator(chunk_size=max(limit + 1, 100)):
        if not pattern.matches(event.message):
            continue
        if len(page) == limit:
            more = True
            break
        page.append(event)

    response: dict[str, Any] = {
        "events": [_event(event) for event in page],
        "searchedLogStreams": [{"logStreamName": name, "searchedCompletely": not more} for name in streams],
    }
    if more:
        response["nextToken"] = _encode_token(page[-1], fingerprint)
    return response
