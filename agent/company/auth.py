"""How the console authenticates to the company's Admin API (ADMIN_API_AUTH): a bearer token, an API key in a
header, an OAuth2 client-credentials token (cached and refreshed), or AWS SigV4 for APIs behind API Gateway's IAM
authorization. Secrets come from settings, which read them from the environment or `*_FILE`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent.tools.admin_api import AdminApiClient

TOKEN_REFRESH_MARGIN_SECONDS = 60  # a token this close to its expiry is fetched anew before use
DEFAULT_TOKEN_SECONDS = 300  # a token endpoint that says nothing about expiry: ask again after this long
MISSING_SETTING = "ADMIN_API_AUTH={scheme} needs {name}."
TOKEN_REFUSED = "The OAuth2 token endpoint {url} refused the client credentials (HTTP {status}): {detail}"  # noqa: S105
TOKEN_UNREADABLE = "The OAuth2 token endpoint {url} answered without an access_token."  # noqa: S105


class TokenError(httpx.ConnectError):
    """The token endpoint failed: the request was never sent, so the client reports the API as unreachable (a
    definite answer: nothing can have happened)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class HeaderAuth(httpx.Auth):
    """A fixed header on every request: `Authorization: Bearer ...` or an API key header."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self.name] = self.value
        yield request


class _TokenCache:
    """Access tokens per (token URL, client id, scope) for the process, shared by every client and thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token, expires = self._tokens.get(key, ("", 0.0))
        return token if token and time.monotonic() < expires - TOKEN_REFRESH_MARGIN_SECONDS else None

    def put(self, key: tuple[str, str, str], token: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + lifetime)

    def forget(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = _TokenCache()


class OAuth2ClientCredentials(httpx.Auth):
    """RFC 6749 §4.4: a token from the token endpoint (client id and secret by HTTP Basic), reused until shortly
    before it expires; a 401 from the API fetches a new one and sends the request once more."""

    def __init__(self, *, token_url: str, client_id: str, client_secret: str, scope: str = "", timeout: float) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.timeout = timeout
        self.key = (token_url, client_id, scope)

    def _fetch(self) -> str:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        response = httpx.post(
            self.token_url, data=data, auth=(self.client_id, self.client_secret), timeout=self.timeout
        )
        if response.status_code != 200:
            raise TokenError(
                TOKEN_REFUSED.format(url=self.token_url, status=response.status_code, detail=response.text[:200])
            )
        try:
            payload: dict[str, Any] = response.json()
            token = str(payload["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError(TOKEN_UNREADABLE.format(url=self.token_url)) from exc
        lifetime = float(payload.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        TOKENS.put(self.key, token, lifetime)
        return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = TOKENS.get(self.key) or self._fetch()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # revoked or rotated early: one new token, one more try
            TOKENS.forget(self.key)
            request.headers["Authorization"] = f"Bearer {self._fetch()}"
            yield request


class SigV4Auth(httpx.Auth):
    """Signs each HTTP request with SigV4 (API Gateway's IAM authorization, execute-api:Invoke), as the agent's
    role, whose credentials botocore refreshes. Each retry is signed anew (a signature is valid for five minutes).
    """

    requires_request_body = True
    _SIGNED = ("content-type", "idempotency-key", "accept")

    def __init__(self, *, region: str, service: str = "execute-api") -> None:
        self.region = region
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth as BotocoreSigV4
        from botocore.awsrequest import AWSRequest

        from agent.aws import aws_credentials

        headers = {name: value for name, value in request.headers.items() if name.lower() in self._SIGNED}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        BotocoreSigV4(aws_credentials(), self.service, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


def _required(scheme: str, name: str) -> str:
    value = getattr(settings, name)
    if not value:
        raise ImproperlyConfigured(MISSING_SETTING.format(scheme=scheme, name=name))
    return value


def admin_api_auth() -> httpx.Auth | None:
    """The auth of ADMIN_API_AUTH, built from its settings."""
    scheme = settings.ADMIN_API_AUTH
    if scheme == "bearer":
        token = settings.ADMIN_API_TOKEN
        return HeaderAuth("Authorization", f"Bearer {token}") if token else None
    if scheme == "api_key":
        return HeaderAuth(_required(scheme, "ADMIN_API_KEY_HEADER"), _required(scheme, "ADMIN_API_KEY"))
    if scheme == "oauth2":
        return OAuth2ClientCredentials(
            token_url=_required(scheme, "ADMIN_API_OAUTH_TOKEN_URL"),
            client_id=_required(scheme, "ADMIN_API_OAUTH_CLIENT_ID"),
            client_secret=_required(scheme, "ADMIN_API_OAUTH_CLIENT_SECRET"),
            scope=settings.ADMIN_API_OAUTH_SCOPE,
            timeout=settings.ADMIN_API_TIMEOUT_SECONDS,
        )
    if scheme == "sigv4":
        return SigV4Auth(region=settings.AWS_REGION, service=settings.ADMIN_API_SIGV4_SERVICE)
    return None


def admin_api() -> AdminApiClient:
    """A client configured from settings (ADMIN_API_URL, ADMIN_API_AUTH and its secrets); a context manager."""
    return AdminApiClient(
        base_url=settings.ADMIN_API_URL,
        auth=admin_api_auth(),
        timeout=settings.ADMIN_API_TIMEOUT_SECONDS,
        max_attempts=settings.ADMIN_API_MAX_ATTEMPTS,
    )
