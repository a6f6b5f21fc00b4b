"""The Admin API behind API Gateway's IAM authorization: every request signed with SigV4 for execute-api."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from agent.company.auth import admin_api
from tests.http_standin import StandIn, serve

TENANT = {
    "tenant_id": "acme",
    "name": "Acme",
    "plan": "growth",
    "status": "active",
    "trial_ends_at": None,
    "cache_version": 4,
    "cache_reset_at": "2026-11-20T09:00:00Z",
}


@pytest.fixture
def gateway(settings, monkeypatch) -> Iterator[StandIn]:
    for stand_in in serve(prefix="/prod"):
        settings.ADMIN_API_URL, settings.ADMIN_API_AUTH, settings.ADMIN_API_TOKEN = stand_in.url, "sigv4", "unused"
        settings.AWS_REGION, settings.AGENT_ROLE_ARN = "eu-west-1", ""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
        monkeypatch.setenv("AWS_SESSION_TOKEN", "session-example")
        yield stand_in


def _signature_valid(recorded, url: str) -> bool:
    """Recompute the signature of what the server received, with the same credentials and timestamp."""
    authorization = recorded.headers["authorization"]
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: recorded.headers[name] for name in signed_names}
    request = AWSRequest(method=recorded.method, url=url, data=recorded.body, headers=headers)
    request.context["timestamp"] = recorded.headers["x-amz-date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret-example", "session-example"), "execute-api", "eu-west-1")
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return authorization.endswith(f"Signature={signature}")


def test_it_signs_reads_and_writes_for_execute_api_instead_of_sending_the_token(gateway: StandIn) -> None:
    gateway.answer(200, TENANT)
    gateway.answer(200, {"tenant_id": "acme", "cache_version": 5, "cache_reset_at": "2026-11-20T10:00:00Z"})
    with admin_api() as client:
        client.request("GET", "/tenants/acme")
        client.request("POST", "/tenants/acme/cache/reset", body={}, idempotency_key="agent-console-key-1")

    read, write = gateway.requests
    for recorded in (read, write):
        authorization = recorded.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in authorization
        assert recorded.headers["x-amz-security-token"] == "session-example"
        assert "Bearer" not in authorization
    assert "idempotency-key" in write.headers["authorization"]  # the key is part of what is signed
    assert _signature_valid(read, f"{gateway.url.removesuffix('/prod')}{read.path}")
    assert _signature_valid(write, f"{gateway.url.removesuffix('/prod')}{write.path}")


def test_it_fails_the_check_when_the_body_was_changed(gateway: StandIn) -> None:
    gateway.answer(200, {"tenant_id": "acme", "cache_version": 5, "cache_reset_at": "2026-11-20T10:00:00Z"})
    with admin_api() as client:
        client.request("POST", "/tenants/acme/cache/reset", body={}, idempotency_key="agent-console-key-2")
    [write] = gateway.requests
    write.body = b'{"tenant_id": "globex"}'
    assert not _signature_valid(write, f"{gateway.url.removesuffix('/prod')}{write.path}")
