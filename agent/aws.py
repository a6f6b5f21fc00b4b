"""AWS clients for the agent: the standard credential chain, or AGENT_ROLE_ARN assumed through STS.

One module for this external system, so Bedrock and CloudWatch Logs get their credentials the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
from botocore.config import Config
from django.conf import settings

ROLE_SESSION_NAME = "agent-console"
ROLE_SESSION_SECONDS = 3600
ROLE_REFRESH_MARGIN = timedelta(minutes=5)

# Temporary credentials of the assumed role, per (role ARN, region), reused until shortly before they expire.
_credentials_lock = threading.Lock()
_credentials_cache: dict[tuple[str, str], dict[str, Any]] = {}


def clear_credentials_cache() -> None:
    """Forget assumed-role credentials (after a role change, and between tests that fake AWS)."""
    with _credentials_lock:
        _credentials_cache.clear()


def _assumed_role_credentials(role_arn: str, region: str) -> dict[str, Any]:
    key = (role_arn, region)
    with _credentials_lock:
        cached = _credentials_cache.get(key)
        if cached is not None and cached["Expiration"] - datetime.now(UTC) > ROLE_REFRESH_MARGIN:
            return cached
        # The standard credential chain (env, profile, instance/task role) signs the AssumeRole call.
        sts = boto3.session.Session().client("sts", region_name=region)
        credentials = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME, DurationSeconds=ROLE_SESSION_SECONDS
        )["Credentials"]
        _credentials_cache[key] = credentials
        return credentials


def aws_client(service: str, *, config: Config) -> Any:
    """A client of `service` in AWS_REGION, as the agent's role when AGENT_ROLE_ARN is set.

    A session per client: boto3 sessions are not safe to share between worker threads. boto3 itself honours
    AWS_ENDPOINT_URL_<SERVICE> (e.g. a VPC endpoint for bedrock-runtime).
    """
    session = boto3.session.Session()
    if not settings.AGENT_ROLE_ARN:
        return session.client(service, region_name=settings.AWS_REGION, config=config)
    credentials = _assumed_role_credentials(settings.AGENT_ROLE_ARN, settings.AWS_REGION)
    return session.client(
        service,
        region_name=settings.AWS_REGION,
        config=config,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def aws_credentials() -> Any:
    """Frozen credentials for signing requests by hand: the agent's role when AGENT_ROLE_ARN is set."""
    from botocore.credentials import Credentials

    if settings.AGENT_ROLE_ARN:
        assumed = _assumed_role_credentials(settings.AGENT_ROLE_ARN, settings.AWS_REGION)
        return Credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("No AWS credentials found to sign the request (environment, profile or task role).")
    return credentials.get_frozen_credentials()


class ExecuteApiAuth(httpx.Auth):
    """Signs each HTTP request with SigV4 for API Gateway's IAM authorization (execute-api:Invoke).

    Signed as the agent's role, so the Admin API accepts exactly what that role may invoke. Each retry is signed
    anew (a signature is valid for five minutes).
    """

    requires_request_body = True
    _SIGNED = ("content-type", "idempotency-key", "accept")

    def __init__(self, *, region: str) -> None:
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {name: value for name, value in request.headers.items() if name.lower() in self._SIGNED}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(aws_credentials(), "execute-api", self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request
