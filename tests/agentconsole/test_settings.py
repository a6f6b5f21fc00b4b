from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from agentconsole.env import env_bool, env_choice, env_float, env_int, env_list, env_prices, env_secret, env_str

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
    "DJANGO_ALLOWED_HOSTS": "console.example.com",
    "DATABASE_URL": "sqlite:////tmp/agentconsole-deploy-check.sqlite3",
    "ADMIN_API_URL": "https://admin-api.internal.example.com/v1",
    "LOGS_GROUP_NAME": "/example/app",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ZENDESK_", "DATABASE_"))}
    clean["DJANGO_SETTINGS_MODULE"] = "agentconsole.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_it_reads_typed_values(monkeypatch) -> None:
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_FLOAT", "0.5")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    monkeypatch.setenv("X_CHOICE", "offline")
    assert env_bool("X_BOOL", False) is True
    assert env_int("X_INT", 1) == 42
    assert env_float("X_FLOAT", 1.0) == 0.5
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    assert env_choice("X_CHOICE", "bedrock", ("bedrock", "offline")) == "offline"
    assert env_str("X_UNSET", "fallback") == "fallback"
    monkeypatch.setenv("X_PRICES", '{"claude-haiku": {"input": 1, "cache_read": 0.1}}')
    assert env_prices("X_PRICES") == {"claude-haiku": {"input": 1.0, "cache_read": 0.1}}
    assert env_prices("X_UNSET") == {}


@pytest.mark.parametrize(
    ("name", "value", "read", "message"),
    [
        ("X_BOOL", "maybe", lambda: env_bool("X_BOOL", False), "X_BOOL must be a boolean"),
        ("X_INT", "ten", lambda: env_int("X_INT", 1), "X_INT must be an integer"),
        ("X_INT", "-1", lambda: env_int("X_INT", 1, minimum=0), "X_INT must be at least 0"),
        ("X_FLOAT", "fast", lambda: env_float("X_FLOAT", 1.0), "X_FLOAT must be a number"),
        ("X_CHOICE", "gpt", lambda: env_choice("X_CHOICE", "a", ("a", "b")), "X_CHOICE must be one of a, b"),
        ("X_REQUIRED", "", lambda: env_str("X_REQUIRED"), "X_REQUIRED must be set"),
        ("X_PRICES", "{nope", lambda: env_prices("X_PRICES"), "X_PRICES must be a JSON object"),
        ("X_PRICES", '{"m": 3}', lambda: env_prices("X_PRICES"), "X_PRICES must map model ids to prices"),
        ("X_PRICES", '{"m": {"inptu": 3}}', lambda: env_prices("X_PRICES"), "X_PRICES: 'm' has 'inptu'"),
        ("X_PRICES", '{"m": {"input": -1}}', lambda: env_prices("X_PRICES"), "X_PRICES: 'm' has 'input': -1"),
    ],
)
def test_it_fails_loudly_naming_the_variable(monkeypatch, name, value, read, message) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        read()


def test_it_reads_a_secret_from_a_file(monkeypatch, tmp_path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    monkeypatch.delenv("X_SECRET", raising=False)
    monkeypatch.setenv("X_SECRET_FILE", str(secret_file))
    assert env_secret("X_SECRET") == "s3cret"


def test_it_refuses_a_secret_set_twice_or_an_unreadable_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("X_SECRET", "inline")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="Set only one of X_SECRET and X_SECRET_FILE"):
        env_secret("X_SECRET")
    monkeypatch.delenv("X_SECRET")
    with pytest.raises(ImproperlyConfigured, match="X_SECRET_FILE points to an unreadable file"):
        env_secret("X_SECRET")


def test_it_passes_the_deploy_check_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_names_a_company_setting_left_out_instead_of_pointing_at_the_sandbox() -> None:
    script = (
        "from django.apps import apps; from django.conf import settings; from django.urls import Resolver404, resolve\n"
        "try:\n    resolve('/sandbox/admin-api/v1/tenants/acme'); print('sandbox served')\n"
        "except Resolver404:\n    print('no sandbox URL')\n"
        "print(apps.is_installed('sandbox'), repr(settings.ADMIN_API_URL), repr(settings.LOGS_GROUP_NAME))"
    )
    bare = {k: v for k, v in PRODUCTION_ENV.items() if k not in ("ADMIN_API_URL", "LOGS_GROUP_NAME")}

    shown = _manage("shell", "-c", script, env=bare)
    checked = _manage("check", "--deploy", env=bare)

    assert shown.stdout.strip().splitlines()[-2:] == ["no sandbox URL", "False '' ''"], shown.stderr
    assert "(agent.W001) ADMIN_API_URL is not set" in checked.stderr
    assert "(agent.W002) LOGS_GROUP_NAME is not set" in checked.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off"),
        ({"DJANGO_DEBUG": "sometimes"}, "DJANGO_DEBUG must be a boolean"),
        ({"ZENDESK_WEBHOOK_MAX_SKEW_SECONDS": "five"}, "ZENDESK_WEBHOOK_MAX_SKEW_SECONDS must be an integer"),
        ({"HELPDESK_PODS": "billing=1"}, 'HELPDESK_PODS must include a "humans" pod'),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
    ],
)
def test_it_refuses_to_start_with_bad_configuration(env, message) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_treats_a_bare_checkout_as_development_but_never_a_configured_one() -> None:
    bare = _manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env={})
    assert bare.stdout.strip().endswith("True"), bare.stderr
    configured = _manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env={"DJANGO_SECRET_KEY": "k" * 50}
    )
    assert configured.stdout.strip().endswith("False"), configured.stderr


def test_it_derives_every_redis_redelivery_timing_from_the_visibility_timeout() -> None:
    script = (
        "from django.conf import settings; o = settings.CELERY_BROKER_TRANSPORT_OPTIONS; "
        "print(o['visibility_timeout'], o['unacked_restore_interval'], o['unacked_mutex_expire'])"
    )
    env = {**PRODUCTION_ENV, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0", "CELERY_VISIBILITY_TIMEOUT_SECONDS": "20"}
    result = _manage("shell", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    # kombu's own mutex default (300 s) delayed every redelivery after a crash by five minutes.
    assert result.stdout.strip().splitlines()[-1].split() == ["20", "5", "5"]


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "prepared"), [("true", True), ("false", False)])
def test_it_prepares_repeated_statements_on_the_server_when_asked(value, prepared) -> None:
    from django.db import connection

    db = connection.settings_dict
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    for _ in range(3):\n"
        "        cursor.execute('SELECT %s::int', [1])\n"
        "    cursor.execute('SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql')\n"
        "    print('prepared', cursor.fetchone()[0])\n"
    )
    done = _manage(
        "shell", "-c", code,
        env={"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
             "DATABASE_SERVER_SIDE_BINDING": value, "DJANGO_SECRET_KEY": "x" * 50},
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert ("prepared 0" not in done.stdout) is prepared, done.stdout


def test_it_gives_celery_the_django_settings_as_a_dict() -> None:
    from django.conf import settings

    from agentconsole.celery import app

    assert app.conf.task_default_queue == settings.CELERY_TASK_DEFAULT_QUEUE  # loaded, from the CELERY_ namespace
    assert app.conf.broker_transport_options == settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert app.conf.task_acks_late == settings.CELERY_TASK_ACKS_LATE
    # Read from a plain dict (each lookup a dict's, not an attribute of Django's settings object per spelling).
    assert [type(source) for source in app.conf.maps] == [dict, dict, dict]
