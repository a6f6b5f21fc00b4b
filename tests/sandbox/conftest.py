from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client

from sandbox.models import FaultSwitch

BASE = "/sandbox/admin-api/v1"


def auth_headers(token: str | None = None, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or settings.SANDBOX_ADMIN_API_TOKEN}", **extra}


class AdminApi:
    """The Admin API through the full Django stack (django.test.Client), authenticated unless told otherwise."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> object:
        return self.client.get(f"{BASE}{path}", headers=auth_headers() if headers is None else headers)

    def post(
        self, path: str, body: object = None, *, key: str | None = None, headers: dict[str, str] | None = None
    ) -> object:
        return self._send("post", path, body, key, headers)

    def put(
        self, path: str, body: object = None, *, key: str | None = None, headers: dict[str, str] | None = None
    ) -> object:
        return self._send("put", path, body, key, headers)

    def _send(self, method: str, path: str, body: object, key: str | None, headers: dict[str, str] | None) -> object:
        sent = auth_headers() if headers is None else dict(headers)
        if key is not None:
            sent["Idempotency-Key"] = key
        data = body if isinstance(body, str | bytes) else ("" if body is None else json.dumps(body))
        return getattr(self.client, method)(f"{BASE}{path}", data=data, content_type="application/json", headers=sent)


@pytest.fixture
def admin_api(db: None) -> AdminApi:
    return AdminApi()


@pytest.fixture
def set_faults(db: None) -> Callable[..., FaultSwitch]:
    def set_(**values: object) -> FaultSwitch:
        switch, _ = FaultSwitch.objects.update_or_create(pk=1, defaults=values)
        return switch

    return set_
