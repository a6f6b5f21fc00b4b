"""Test settings: the real services on loopback, overridable with TEST_DATABASE_URL / TEST_REDIS_URL.

The product alone, without the sandbox company: sandbox/settings_test.py adds it for the tests that need one."""

from __future__ import annotations

import os

os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/agentconsole")
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DJANGO_DEBUG", "false")
# The test client speaks plain HTTP.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("ZENDESK_WEBHOOK_SECRET", "test-webhook-secret")
os.environ.setdefault("ADMIN_API_TOKEN", "test-admin-api-token")

from agentconsole.settings import *  # noqa: F403

# The tests render templates without running collectstatic first (the live server serves the apps' files).
STATIC_ROOT = None
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never in production

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # Django's PostgreSQL backend, emptying tables between transactional tests with DELETE rather than a TRUNCATE
    # of every table (agentconsole/testdb/base.py): seconds less per transactional test.
    DATABASES["default"]["ENGINE"] = "agentconsole.testdb"  # noqa: F405
