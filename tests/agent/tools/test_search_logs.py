"""search_logs on CloudWatch Logs (moto fakes AWS at boto's boundary). Through the sandbox company's
CloudWatch-compatible endpoint: tests/sandbox/logs/test_cloudwatch_endpoint.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sts.models import sts_backends

from agent.aws import clear_credentials_cache
from agent.catalogue import get_tool
from agent.tools.base import ErrorType, Observation, ToolContext
from agent.tools.logs import NO_LOG_GROUP

REGION = "eu-west-1"
GROUP = "/company/app"
ROLE_ACCOUNT = "111111111111"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/agent-console-logs"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    settings.LOGS_GROUP_NAME = GROUP
    settings.AWS_REGION = REGION
    settings.AGENT_ROLE_ARN = ""
    clear_credentials_cache()
    with mock_aws():
        yield
    clear_credentials_cache()


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def put_events(streams: dict[str, list[tuple[datetime, str]]], *, client: Any = None) -> None:
    logs = client or boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=GROUP)
    for stream, events in streams.items():
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        logs.put_log_events(
            logGroupName=GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": ms(at), "message": message} for at, message in sorted(events)],
        )


def search(args: dict, *, tenant_id: str = "acme") -> Observation:
    tool = get_tool("search_logs")
    assert tool is not None
    return tool.invoke(args, ToolContext(ticket_id=1, tenant_id=tenant_id))


def messages(observation: Observation) -> list[str]:
    assert observation.ok is True, observation.message
    return [event["message"] for event in observation.data["events"]]


def ago(minutes: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def test_it_searches_only_the_bound_tenants_stream(aws: None) -> None:
    put_events(
        {
            "acme": [(ago(10), "ERROR acme cache stale"), (ago(5), "INFO acme ok")],
            "globex": [(ago(8), "ERROR globex secret failure")],
        }
    )

    observation = search({"query": ""})

    assert messages(observation) == ["ERROR acme cache stale", "INFO acme ok"]
    assert observation.data["tenant_id"] == "acme"
    assert observation.meta == {"backend": "cloudwatch", "log_group": GROUP}


def test_it_applies_the_filter_pattern(aws: None) -> None:
    put_events({"acme": [(ago(10), "ERROR lock timeout"), (ago(9), "INFO deploy started"), (ago(8), "ERROR other")]})

    assert messages(search({"query": "ERROR timeout"})) == ["ERROR lock timeout"]
    assert messages(search({"query": '"deploy started"'})) == ["INFO deploy started"]


def test_it_searches_only_the_requested_window(aws: None) -> None:
    put_events({"acme": [(ago(180), "ERROR early"), (ago(30), "ERROR recent")]})

    assert messages(search({"query": "ERROR", "minutes": 60})) == ["ERROR recent"]
    assert messages(search({"query": "ERROR", "minutes": 240})) == ["ERROR early", "ERROR recent"]


def test_it_limits_the_events_and_says_more_are_available(aws: None) -> None:
    put_events({"acme": [(ago(50 - n), f"line {n}") for n in range(5)]})

    observation = search({"limit": 2})

    assert messages(observation) == ["line 0", "line 1"]
    assert observation.data["count"] == 2
    assert observation.data["more_available"] is True
    assert search({"limit": 5}).data["more_available"] is False


def test_it_summarises_events_compactly(aws: None) -> None:
    at = ago(3).replace(microsecond=0)
    put_events({"acme": [(at, "  ERROR " + "x" * 700 + "\n")]})

    [event] = search({}).data["events"]

    assert event["time"] == at.isoformat(timespec="seconds")
    assert event["message"].startswith("ERROR xxx")
    assert len(event["message"]) == 501
    assert event["message"].endswith("…")


def test_it_reports_a_missing_log_group_as_not_found(aws: None) -> None:
    observation = search({"query": "ERROR"})

    assert observation.ok is False
    assert observation.error_type == ErrorType.NOT_FOUND


def test_it_refuses_a_ticket_without_a_tenant(aws: None) -> None:
    put_events({"acme": [(ago(1), "ERROR acme")]})

    observation = search({}, tenant_id="")

    assert observation.error_type == ErrorType.REFUSED


def test_it_rejects_a_stream_argument(aws: None) -> None:
    observation = search({"query": "ERROR", "log_stream": "globex"})

    assert observation.error_type == ErrorType.INVALID_ARGUMENTS


def test_it_reads_the_logs_with_the_assumed_agent_role(
    aws: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto keeps one set of resources per account and picks the account from the signing access key: the role's
    # account holds the tenant's real logs, the default account a decoy group. Only calls signed with the
    # assumed role's credentials can see the former.
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ROLE_ACCOUNT)
    put_events({"acme": [(ago(5), "ERROR seen through the role")]})
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    put_events({"acme": [(ago(5), "ERROR decoy in the default account")]})
    settings.AGENT_ROLE_ARN = ROLE_ARN

    first = search({"query": "ERROR"})
    second = search({"query": "ERROR"})

    assert messages(first) == ["ERROR seen through the role"]
    assert messages(second) == ["ERROR seen through the role"]
    assumed = sts_backends[ROLE_ACCOUNT]["aws"].assumed_roles
    assert [role.role_arn for role in assumed] == [ROLE_ARN]  # cached: one AssumeRole for both searches
    assert assumed[0].access_key_id.startswith("ASIA")


def test_it_uses_the_default_credential_chain_without_a_role(aws: None) -> None:
    put_events({"acme": [(ago(5), "ERROR default account")]})

    assert messages(search({"query": "ERROR"})) == ["ERROR default account"]
    assert sts_backends[ROLE_ACCOUNT]["aws"].assumed_roles == []


def test_it_fails_clearly_without_a_log_group(aws: None, settings: Any) -> None:
    settings.LOGS_GROUP_NAME = ""

    observation = search({"query": "ERROR"})

    assert observation.ok is False
    assert observation.message == NO_LOG_GROUP
