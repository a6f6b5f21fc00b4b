"""AWS clients for the agent: the standard credential chain, or AGENT_ROLE_ARN assumed through STS.

One module for this external system, so Bedrock and CloudWatch Logs get their credentials the same way. An assumed
role's credentials are botocore refreshable credentials: every request a client signs asks them first, and they
assume the role again before they expire (botocore refreshes 15 minutes ahead, and blocks for it 10 minutes ahead),
so a worker that lives for days never signs with expired keys, whatever its clients cache.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import httpx
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError
from django.conf import settings

ROLE_SESSION_NAME = "agent-console"
ROLE_SESSION_SECONDS = 3600
STS_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})

# The assumed role's refreshable credentials, one per (role ARN, region) for the whole process: every client shares
# them, so the role is assumed once per hour of work, not once per client.
_credentials_lock = threading.Lock()
_credentials_cache: dict[tuple[str, str], Credentials] = {}


def clear_credentials_cache() -> None:
    """Forget assumed-role credentials (after a role change, and between tests that fake AWS)."""
    with _credentials_lock:
        _credentials_cache.clear()


def assumed_role_credentials(role_arn: str, region: str) -> Credentials:
    """Credentials of `role_arn`, assumed with the standard chain's credentials, that refresh themselves."""
    key = (role_arn, region)
    with _credentials_lock:
        cached = _credentials_cache.get(key)
        if cached is not None:
            return cached
        source = botocore.session.get_session()
        source_credentials = source.get_credentials()
        if source_credentials is None:
            raise NoCredentialsError()
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=functools.partial(source.create_client, region_name=region, config=STS_CONFIG),
            source_credentials=source_credentials,
            role_arn=role_arn,
            extra_args={"RoleSessionName": ROLE_SESSION_NAME, "DurationSeconds": ROLE_SESSION_SECONDS},
        )
        credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
        _credentials_cache[key] = credentials
        return credentials


class _AssumedRole(CredentialProvider):
    """Puts the refreshable credentials first in a session's credential chain."""

    METHOD = "agent-console-assume-role"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def aws_client(service: str, *, config: Config) -> Any:
    """A client of `service` in AWS_REGION, as the agent's role when AGENT_ROLE_ARN is set.

    A session per client: boto3 sessions are not safe to share between worker threads. boto3 itself honours
    AWS_ENDPOINT_URL_<SERVICE> (e.g. a VPC endpoint for bedrock-runtime).
    """
    if not settings.AGENT_ROLE_ARN:
        return boto3.session.Session().client(service, region_name=settings.AWS_REGION, config=config)
    credentials = assumed_role_credentials(settings.AGENT_ROLE_ARN, settings.AWS_REGION)
    core = botocore.session.get_session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole(credentials))
    return boto3.session.Session(botocore_session=core).client(service, region_name=settings.AWS_REGION, config=config)


def aws_credentials() -> Any:
    """Frozen credentials for signing requests by hand: the agent's role when AGENT_ROLE_ARN is set (refreshed
    before they expire, as every client's are)."""
    if settings.AGENT_ROLE_ARN:
        return assumed_role_credentials(settings.AGENT_ROLE_ARN, settings.AWS_REGION).get_frozen_credentials()
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
