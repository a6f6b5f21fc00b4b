"""The sandbox's logs served as CloudWatch Logs serves them: FilterLogEvents over AWS's JSON 1.1 protocol.

The product's search_logs tool is a boto3 CloudWatch Logs client and nothing else. Pointed here with boto3's own
`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=<site>/sandbox/cloudwatch-logs`, it reads the sandbox's LogEvent rows over HTTP
exactly as it reads CloudWatch, with no AWS account: the product never imports the sandbox, and the real client code
is on the path.

Requests must be SigV4-signed (any credentials: the signature is not checked, as nothing secret is behind it).
Errors have CloudWatch's shape, `{"__type": "InvalidParameterException", "message": "..."}`, so botocore raises the
same ClientError it raises for AWS.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sandbox.logs import MAX_LIMIT, InvalidParameterException, filter_log_events

CONTENT_TYPE = "application/x-amz-json-1.1"
FILTER_LOG_EVENTS = "Logs_20140328.FilterLogEvents"

NOT_SIGNED = "Request is missing Authentication Token"
UNKNOWN_OPERATION = "Only FilterLogEvents is served here, not {target!r}."
NOT_JSON = "The request body must be a JSON object."


def _error(code: str, message: str, *, status: int = 400) -> JsonResponse:
    return JsonResponse({"__type": code, "message": message}, status=status, content_type=CONTENT_TYPE)


@csrf_exempt
@require_POST
def cloudwatch_logs_endpoint(request: HttpRequest) -> JsonResponse:
    if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
        return _error("MissingAuthenticationTokenException", NOT_SIGNED, status=403)
    target = request.headers.get("X-Amz-Target", "")
    if target != FILTER_LOG_EVENTS:
        return _error("UnknownOperationException", UNKNOWN_OPERATION.format(target=target))
    try:
        body: Any = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return _error("SerializationException", NOT_JSON)
    try:
        response = filter_log_events(
            log_group_name=body.get("logGroupName"),
            log_stream_names=body.get("logStreamNames"),
            filter_pattern=body.get("filterPattern") or "",
            start_time=body.get("startTime"),
            end_time=body.get("endTime"),
            limit=body.get("limit", MAX_LIMIT),
            next_token=body.get("nextToken"),
        )
    except InvalidParameterException as exc:
        return _error("InvalidParameterException", exc.message)
    return JsonResponse(response, content_type=CONTENT_TYPE)
