"""search_logs with the tenant as a log field (LOGS_TENANT_BINDING=field): a CloudWatch Logs Insights query whose
first filter is the ticket's tenant. AWS is faked at botocore's boundary (Stubber) with the real client code."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from agent.catalogue import get_tool
from agent.tools.base import ErrorType, ToolContext

EXPECTED_QUERY = "\n".join(
    [
        "fields @timestamp, @message, @logStream",
        '| filter account = "acme"',
        '| filter @message like "ERROR" and @message like "stale entry"',
        '| filter @message not like "debug"',
        "| sort @timestamp asc",
        "| limit 3",
    ]
)


@pytest.fixture
def insights(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Stubber:
    settings.LOGS_TENANT_BINDING, settings.LOGS_TENANT_FIELD = "field", "account"
    settings.LOGS_GROUP_NAME = "/company/app"
    client = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(client)
    monkeypatch.setattr("agent.tools.logs.cloudwatch_logs_client", lambda: client)
    monkeypatch.setattr("agent.tools.logs.INSIGHTS_POLL_SECONDS", 0.0)
    with stubber:
        yield stubber


def _row(timestamp: str, message: str) -> list[dict[str, str]]:
    return [{"field": "@timestamp", "value": timestamp}, {"field": "@message", "value": message}]


def test_it_filters_on_the_tenant_field_first_and_reads_the_results(insights: Stubber) -> None:
    insights.add_response(
        "start_query",
        {"queryId": "q-1"},
        {"logGroupName": "/company/app", "startTime": ANY, "endTime": ANY, "queryString": EXPECTED_QUERY, "limit": 3},
    )
    insights.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q-1"})
    insights.add_response(
        "get_query_results",
        {
            "status": "Complete",
            "results": [
                _row("2026-11-23 10:00:00.000", "ERROR cache_error stale entry"),
                _row("2026-11-23 10:05:00.000", "ERROR cache_error stale entry again"),
                _row("2026-11-23 10:06:00.000", "ERROR a third"),
            ],
        },
        {"queryId": "q-1"},
    )

    result = get_tool("search_logs").invoke(
        {"query": 'ERROR "stale entry" -debug', "limit": 2}, ToolContext(ticket_id=1, tenant_id="acme")
    )

    assert result.ok, result.message
    assert [e["message"] for e in result.data["events"]] == [
        "ERROR cache_error stale entry",
        "ERROR cache_error stale entry again",
    ]
    assert result.data["events"][0]["time"] == "2026-11-23T10:00:00+00:00"
    assert result.data["more_available"] is True
    insights.assert_no_pending_responses()


def test_it_refuses_patterns_insights_cannot_take_and_reports_a_failed_query(insights: Stubber) -> None:
    tool = get_tool("search_logs")
    context = ToolContext(ticket_id=1, tenant_id="acme")

    refused = tool.invoke({"query": '{ $.level = "ERROR" }'}, context)
    insights.add_response("start_query", {"queryId": "q-2"})
    insights.add_response("get_query_results", {"status": "Failed", "results": []})
    failed = tool.invoke({"query": "ERROR"}, context)

    assert refused.error_type == ErrorType.INVALID_ARGUMENTS
    assert (failed.error_type, failed.retryable) == (ErrorType.UPSTREAM, False)
    assert "did not finish (Failed)" in failed.message
