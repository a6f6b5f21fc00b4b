"""The webhook's door (agent/webhook.py): answered by the first middleware, at both spellings of its URL, with the
answers, the request id and the host and HTTPS rules the rest of the site has."""

from __future__ import annotations

import json
import logging

import psycopg
import pytest
from django.db import connection
from django.test import Client

from agent.webhook import BODY_TOO_LARGE, ONLY_POST
from agentconsole.logs import JsonFormatter
from tests.support import WEBHOOK_URL, commit_callbacks_run, queued_task_messages, signed_headers, zendesk_event
from tickets.models import WebhookEvent
from tickets.zendesk_webhook import BODY_NOT_JSON, SIGNATURE_INVALID

pytestmark = pytest.mark.django_db

BOTH_URLS = [WEBHOOK_URL, WEBHOOK_URL + "/"]


def _post(url: str, body: bytes, headers: dict[str, str] | None = None, **extra: object) -> object:
    return Client().post(
        url,
        data=body,
        content_type="application/json",
        headers=signed_headers(body) if headers is None else headers,
        **extra,
    )


@pytest.mark.parametrize("url", BOTH_URLS)
def test_it_stores_a_good_event_at_either_spelling_of_the_url(url, broker) -> None:
    body = json.dumps(zendesk_event()).encode()

    response = _post(url, body)

    assert response.status_code == 202
    assert response["Content-Type"] == "application/json"
    assert response["Content-Length"] == str(len(response.content))  # not chunked, as down the stack
    assert response.json() == {"event_id": "evt-1", "duplicate": False}
    assert WebhookEvent.objects.get().event_id == "evt-1"
    assert commit_callbacks_run() == 1
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.zendesk_event_process_task"]


def test_it_answers_a_redelivery_to_the_other_spelling_as_a_duplicate(broker) -> None:
    body = json.dumps(zendesk_event()).encode()
    first = _post(WEBHOOK_URL, body)
    commit_callbacks_run()

    second = _post(WEBHOOK_URL + "/", body)

    assert (first.json()["duplicate"], second.status_code, second.json()) == (
        False,
        202,
        {"event_id": "evt-1", "duplicate": True},
    )
    assert commit_callbacks_run() == 0
    assert WebhookEvent.objects.count() == 1
    assert len(queued_task_messages(broker)) == 1


def test_it_answers_ahead_of_the_sessions_csrf_and_security_headers() -> None:
    body = json.dumps(zendesk_event()).encode()
    client = Client(enforce_csrf_checks=True)  # a CSRF check would refuse this POST: it has no token

    response = client.post(WEBHOOK_URL + "/", data=body, content_type="application/json", headers=signed_headers(body))

    assert response.status_code == 202
    # What the stack below would have added: none of it.
    assert "Content-Security-Policy" not in response
    assert "X-Frame-Options" not in response
    assert "Vary" not in response  # sessions and CSRF vary on Cookie
    assert not response.cookies


@pytest.mark.parametrize("url", BOTH_URLS)
def test_it_answers_401_to_a_bad_signature_and_stores_nothing(url) -> None:
    body = json.dumps(zendesk_event()).encode()
    headers = signed_headers(body, secret="not-the-secret")

    response = _post(url, body, headers)

    assert response.status_code == 401
    assert response.json() == {"detail": SIGNATURE_INVALID}
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("url", BOTH_URLS)
@pytest.mark.parametrize("method", ["get", "put", "delete", "head", "options"])
def test_it_answers_405_to_any_method_but_post(url, method) -> None:
    response = getattr(Client(), method)(url)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    if method != "head":
        assert response.json() == {"detail": ONLY_POST}


@pytest.mark.parametrize("url", BOTH_URLS)
def test_it_answers_413_to_a_declared_length_over_the_limit_without_reading_the_body(url, settings) -> None:
    settings.ZENDESK_WEBHOOK_MAX_BODY_BYTES = 1024
    body = json.dumps(zendesk_event(description="x" * 2000)).encode()

    response = _post(url, body)

    assert response.status_code == 413
    assert response.json() == {"detail": BODY_TOO_LARGE.format(limit=1024)}
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("url", BOTH_URLS)
def test_it_answers_400_to_a_body_that_is_not_json(url) -> None:
    response = _post(url, b"{not json")

    assert response.status_code == 400
    payload = response.json()
    assert payload["detail"] == BODY_NOT_JSON
    assert [error["field"] for error in payload["errors"]] == [""]
    assert not WebhookEvent.objects.exists()


def test_it_answers_400_to_a_content_length_that_is_not_a_number() -> None:
    body = json.dumps(zendesk_event()).encode()

    response = _post(WEBHOOK_URL, body, CONTENT_LENGTH="twelve")

    assert response.status_code == 400
    assert response.json() == {"detail": "The Content-Length header is not a number."}


def test_it_gives_the_answer_a_request_id_and_keeps_the_load_balancers() -> None:
    body = json.dumps(zendesk_event()).encode()

    given = _post(WEBHOOK_URL, body, {**signed_headers(body), "X-Request-ID": "lb-1234-abcd"})
    made = _post(WEBHOOK_URL + "/", b"{not json")
    refused = _post(WEBHOOK_URL, body, {**signed_headers(body), "X-Request-ID": "not sane; <script>"})

    assert given["X-Request-ID"] == "lb-1234-abcd"
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"].isalnum()
    assert refused["X-Request-ID"] != "not sane; <script>" and refused["X-Request-ID"].isalnum()


@pytest.mark.django_db(transaction=True)  # the message is sent as the INSERT commits, inside the request
def test_it_logs_the_request_id_on_the_requests_log_lines(broker_unreachable) -> None:
    lines: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter().format(record)))  # formatted now, inside the request

    logger = logging.getLogger("agent.services.intake")
    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        body = json.dumps(zendesk_event()).encode()
        response = _post(WEBHOOK_URL, body, {**signed_headers(body), "X-Request-ID": "req-42"})
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 202  # the broker is down: the event is stored, the sweep will send it
    assert [(line["message"], line["request_id"]) for line in lines] == [
        (f"webhook event {WebhookEvent.objects.get().pk}: could not enqueue it; the sweep will", "req-42")
    ]


def test_it_refuses_a_host_the_site_does_not_serve_as_the_site_does(settings) -> None:
    settings.ALLOWED_HOSTS = ["console.example.com"]
    body = json.dumps(zendesk_event()).encode()

    refused = _post(WEBHOOK_URL, body, HTTP_HOST="attacker.example")
    served = _post(WEBHOOK_URL, body, HTTP_HOST="console.example.com")

    assert refused.status_code == 400
    assert served.status_code == 202
    assert WebhookEvent.objects.count() == 1


def test_it_leaves_plain_http_to_the_https_redirect_when_it_is_on(settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    body = json.dumps(zendesk_event()).encode()

    plain = _post(WEBHOOK_URL, body)
    secure = _post(WEBHOOK_URL, body, secure=True)

    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver" + WEBHOOK_URL
    assert secure.status_code == 202
    assert WebhookEvent.objects.count() == 1


def test_it_leaves_other_urls_to_the_stack() -> None:
    response = Client().post(WEBHOOK_URL + "s", data=b"{}", content_type="application/json")

    assert response.status_code == 404


def _terminate_this_connections_backend() -> None:
    """The database ends this thread's kept connection (a failover, an idle timeout), from another connection."""
    db = connection.settings_dict
    dsn = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**dsn, password=db["PASSWORD"] or None, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)  # outside a transaction, as a request is
def test_it_stores_the_event_on_a_new_connection_when_the_kept_one_died(broker) -> None:
    connection.ensure_connection()
    _terminate_this_connections_backend()
    body = json.dumps(zendesk_event()).encode()

    response = _post(WEBHOOK_URL, body)

    assert response.status_code == 202
    assert response.json() == {"event_id": "evt-1", "duplicate": False}
    assert WebhookEvent.objects.get().event_id == "evt-1"
    assert [m["headers"]["task"] for m in queued_task_messages(broker)] == ["agent.tasks.zendesk_event_process_task"]
