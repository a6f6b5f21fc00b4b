from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tickets.zendesk_webhook import (
    SECRET_NOT_CONFIGURED,
    SIGNATURE_INVALID,
    SIGNATURE_MISSING,
    TIMESTAMP_MALFORMED,
    TIMESTAMP_STALE,
    SignatureError,
    compute_signature,
    verify_signature,
)

VECTOR_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
VECTOR_TIMESTAMP = "2021-03-25T05:09:27Z"
VECTOR_BODY = b'{"type":"zen:event-type:ticket.created"}'
VECTOR_SIGNATURE = "69EIqFt9nbXumm7w0tvopVmD8Bclei89GEk+Qcfyr4Y="
VECTOR_NOW = datetime(2021, 3, 25, 5, 10, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def _verify(**overrides: object) -> None:
    kwargs = {
        "secret": VECTOR_SECRET,
        "timestamp": VECTOR_TIMESTAMP,
        "signature": VECTOR_SIGNATURE,
        "body": VECTOR_BODY,
        "now": VECTOR_NOW,
        "max_skew": SKEW,
    }
    kwargs.update(overrides)
    verify_signature(**kwargs)


def test_it_matches_zendesks_published_vector() -> None:
    assert compute_signature(secret=VECTOR_SECRET, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY) == VECTOR_SIGNATURE
    _verify()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"body": b'{"type":"zen:event-type:ticket.created" }'}, SIGNATURE_INVALID),
        ({"secret": "another-secret"}, SIGNATURE_INVALID),
        ({"signature": VECTOR_SIGNATURE[:-2] + "A="}, SIGNATURE_INVALID),
        ({"timestamp": "2021-03-25T05:09:28Z"}, SIGNATURE_INVALID),
        ({"signature": None}, SIGNATURE_MISSING),
        ({"timestamp": ""}, SIGNATURE_MISSING),
        ({"secret": ""}, SECRET_NOT_CONFIGURED),
        ({"now": VECTOR_NOW + timedelta(minutes=6)}, TIMESTAMP_STALE),
        ({"now": VECTOR_NOW - timedelta(minutes=6)}, TIMESTAMP_STALE),
    ],
)
def test_it_refuses_what_does_not_verify(overrides: dict, message: str) -> None:
    with pytest.raises(SignatureError) as caught:
        _verify(**overrides)
    assert caught.value.message == message
    assert caught.value.status_code == 401


@pytest.mark.parametrize("timestamp", ["yesterday", "2021-03-25 05:09", "2021-03-25T05:09:27"])
def test_it_refuses_a_malformed_timestamp_even_when_signed(timestamp: str) -> None:
    signature = compute_signature(secret=VECTOR_SECRET, timestamp=timestamp, body=VECTOR_BODY)
    with pytest.raises(SignatureError) as caught:
        _verify(timestamp=timestamp, signature=signature)
    assert caught.value.message == TIMESTAMP_MALFORMED


def test_it_uses_the_secret_as_a_literal_string_not_base64() -> None:
    import base64

    decoded = base64.b64decode(VECTOR_SECRET).decode()
    assert compute_signature(secret=decoded, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY) != VECTOR_SIGNATURE
