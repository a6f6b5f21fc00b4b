"""AWS clients for the agent: the standard credential chain, or AGENT_ROLE_ARN assumed through STS.

One module for this external system, so Bedrock and CloudWatch Logs get their credentials the same way. An assumed
role's credentials are botocore refreshable credentials: every request a client signs asks them first, and they
assume the role again before they expire (botocore refreshes 15 minutes ahead, and blocks for it 10 minutes ahead),
so a worker that lives for days never signs with expired keys, whatever its clients cache.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.session
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


@functools.cache
def assumed_role_credentials(role_arn: str, region: str) -> Credentials:
    """Credentials of `role_arn`, assumed with the standard chain's credentials, that refresh themselves.

    One set per (role ARN, region) for the whole process: every client shares them, so the role is assumed once
    per hour of work, not once per client. botocore's refreshable credentials do the expiry bookkeeping.
    """
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
    return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")


def clear_credentials_cache() -> None:
    """Forget assumed-role credentials (after a role change, and between tests that fake AWS)."""
    assumed_role_credentials.cache_clear()


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
