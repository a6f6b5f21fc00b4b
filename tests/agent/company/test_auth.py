"""The Admin API's auth schemes, against a local HTTP stand-in of the API and of its OAuth2 token endpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent.company.auth import TOKENS, admin_api, admin_api_auth
from agent.tools.admin_api import ApiReply
from agent.tools.base import ErrorType, Observation
from tests.http_standin import StandIn, serve


@pytest.fixture
def api(settings: Any) -> Iterator[StandIn]:
    TOKENS.clear()
    for stand_in in serve(prefix="/v1"):
        settings.ADMIN_API_URL = stand_in.url
        settings.ADMIN_API_MAX_ATTEMPTS = 1
        yield stand_in
    TOKENS.clear()


def test_it_sends_an_api_key_in_the_configured_header(api: StandIn, settings: Any) -> None:
    settings.ADMIN_API_AUTH, settings.ADMIN_API_KEY_HEADER, settings.ADMIN_API_KEY = "api_key", "X-Api-Token", "k-1"
    api.answer(200, {"ok": True})

    with admin_api() as client:
        reply = client.request("GET", "/things")

    assert isinstance(reply, ApiReply)
    assert api.requests[0].headers["x-api-token"] == "k-1"
    assert "authorization" not in api.requests[0].headers


def test_it_sends_the_bearer_token(api: StandIn, settings: Any) -> None:
    settings.ADMIN_API_AUTH, settings.ADMIN_API_TOKEN = "bearer", "t-1"
    api.answer(200, {})

    with admin_api() as client:
        client.request("GET", "/things")

    assert api.requests[0].headers["authorization"] == "Bearer t-1"


def test_it_fetches_an_oauth2_token_once_and_refreshes_it_when_refused(api: StandIn, settings: Any) -> None:
    settings.ADMIN_API_AUTH = "oauth2"
    settings.ADMIN_API_OAUTH_TOKEN_URL = f"{api.url}/oauth/token"
    settings.ADMIN_API_OAUTH_CLIENT_ID, settings.ADMIN_API_OAUTH_CLIENT_SECRET = "console", "s3cret"
    settings.ADMIN_API_OAUTH_SCOPE = "admin"
    api.answer(200, {"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
    api.answer(200, {"n": 1})
    api.answer(200, {"n": 2})
    api.answer(401, {"error": "invalid_token"})  # revoked early
    api.answer(200, {"access_token": "tok-2", "expires_in": 3600})
    api.answer(200, {"n": 3})

    with admin_api() as client:
        first = client.request("GET", "/things")
    with admin_api() as client:  # another client, the same cached token
        second = client.request("GET", "/things")
        third = client.request("GET", "/things")

    assert [r.body["n"] for r in (first, second, third)] == [1, 2, 3]
    paths = [(r.method, r.path, r.headers.get("authorization")) for r in api.requests]
    token_request = api.requests[0]
    assert paths[0][:2] == ("POST", "/v1/oauth/token")
    assert parse_qs(token_request.body.decode()) == {"grant_type": ["client_credentials"], "scope": ["admin"]}
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(b"console:s3cret").decode()
    assert [p[2] for p in paths[1:4]] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-1"]
    assert paths[4][:2] == ("POST", "/v1/oauth/token")
    assert paths[5][2] == "Bearer tok-2"


def test_it_reports_a_refused_token_request_as_a_definite_failure(api: StandIn, settings: Any) -> None:
    settings.ADMIN_API_AUTH = "oauth2"
    settings.ADMIN_API_OAUTH_TOKEN_URL = f"{api.url}/oauth/token"
    settings.ADMIN_API_OAUTH_CLIENT_ID, settings.ADMIN_API_OAUTH_CLIENT_SECRET = "console", "wrong"
    api.answer(401, {"error": "invalid_client"})

    with admin_api() as client:
        write = client.request("POST", "/things", body={})

    assert isinstance(write, Observation)
    assert (write.error_type, write.uncertain) == (ErrorType.UPSTREAM, False)  # never sent: nothing happened
    assert [r.path for r in api.requests] == ["/v1/oauth/token"]


@pytest.mark.parametrize(
    ("scheme", "missing"),
    [("api_key", "ADMIN_API_KEY"), ("oauth2", "ADMIN_API_OAUTH_TOKEN_URL")],
)
def test_it_names_the_setting_a_scheme_lacks(settings: Any, scheme: str, missing: str) -> None:
    settings.ADMIN_API_AUTH, settings.ADMIN_API_KEY, settings.ADMIN_API_OAUTH_TOKEN_URL = scheme, "", ""

    with pytest.raises(ImproperlyConfigured, match=f"ADMIN_API_AUTH={scheme} needs {missing}"):
        admin_api_auth()
