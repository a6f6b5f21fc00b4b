"""The sandbox's logs as CloudWatch Logs serves them, read by boto3's own client and by the product's search_logs
tool (its only backend), through AWS_ENDPOINT_URL_CLOUDWATCH_LOGS on the live server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from agent.tools.base import ErrorType
from sandbox.cloudwatch_logs import FILTER_LOG_EVENTS
from sandbox.models import LogEvent, Tenant
from tests.agent.tools.test_search_logs import messages, search

GROUP = "/company/app"


def ago(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


@pytest.fixture
def logs(company: Any, settings: Any) -> Any:
    settings.LOGS_GROUP_NAME = GROUP
    for tenant_id, lines in {
        "acme": [(ago(90), "ERROR early timeout"), (ago(20), "ERROR lock timeout"), (ago(10), "INFO deploy ok")],
        "globex": [(ago(15), "ERROR globex timeout")],
    }.items():
        tenant = Tenant.objects.create(id=tenant_id, name=tenant_id.title(), plan="growth", status="active")
        for at, message in lines:
            LogEvent.objects.create(log_group=GROUP, tenant=tenant, timestamp=at, message=message)
    return boto3.client("logs", region_name="us-east-1")


def test_it_answers_boto3_as_cloudwatch_does(logs: Any) -> None:
    response = logs.filter_log_events(logGroupName=GROUP, logStreamNames=["acme"], filterPattern="ERROR", limit=1)

    assert [event["message"] for event in response["events"]] == ["ERROR early timeout"]
    assert response["events"][0]["logStreamName"] == "acme"
    following = logs.filter_log_events(
        logGroupName=GROUP, logStreamNames=["acme"], filterPattern="ERROR", limit=1, nextToken=response["nextToken"]
    )
    assert [event["message"] for event in following["events"]] == ["ERROR lock timeout"]


def test_it_raises_cloudwatchs_error_for_a_bad_argument(logs: Any) -> None:
    with pytest.raises(ClientError) as refused:
        logs.filter_log_events(logGroupName=GROUP, logStreamNames=["acme"], filterPattern='{ $.level = "ERROR" }')

    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "term patterns" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="nextToken is not valid"):
        logs.filter_log_events(logGroupName=GROUP, logStreamNames=["acme"], nextToken="forged")


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"X-Amz-Target": FILTER_LOG_EVENTS}, b"{}", 403, "MissingAuthenticationTokenException"),
        ({"X-Amz-Target": "Logs_20140328.DeleteLogGroup", "Authorization": "AWS4-HMAC-SHA256 x"}, b"{}", 400,
         "UnknownOperationException"),
        ({"X-Amz-Target": FILTER_LOG_EVENTS, "Authorization": "AWS4-HMAC-SHA256 x"}, b"[1]", 400,
         "SerializationException"),
    ],
    ids=["unsigned", "other-operation", "not-an-object"],
)  # fmt: skip
def test_it_refuses_what_cloudwatch_refuses(company: Any, headers: dict, body: bytes, status: int, code: str) -> None:
    response = httpx.post(f"{company.url}/cloudwatch-logs", headers=headers, content=body)

    assert response.status_code == status
    assert response.json()["__type"] == code
    assert httpx.get(f"{company.url}/cloudwatch-logs").status_code == 405


def test_it_is_what_search_logs_reads_for_the_bound_tenant_only(logs: Any) -> None:
    observation = search({"query": "timeout"})

    assert messages(observation) == ["ERROR lock timeout"]
    assert observation.meta["backend"] == "cloudwatch"
    assert messages(search({"query": "timeout"}, tenant_id="globex")) == ["ERROR globex timeout"]


def test_it_widens_the_window_and_pages_for_search_logs(logs: Any) -> None:
    assert messages(search({"query": "ERROR", "minutes": 120})) == ["ERROR early timeout", "ERROR lock timeout"]
    observation = search({"minutes": 120, "limit": 2})
    assert messages(observation) == ["ERROR early timeout", "ERROR lock timeout"]
    assert observation.data["more_available"] is True


def test_it_hands_search_logs_a_refused_pattern_as_invalid_arguments(logs: Any) -> None:
    observation = search({"query": '{ $.level = "ERROR" }'})

    assert observation.ok is False
    assert observation.error_type == ErrorType.INVALID_ARGUMENTS
    assert "pattern" in observation.message
