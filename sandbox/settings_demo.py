"""`make demo`: the product on embedded defaults (SQLite, the filesystem broker, the offline engine), with the
sandbox company standing in for the company's systems. Every value below can still be overridden from the
environment."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("ZENDESK_WEBHOOK_SECRET", "demo-webhook-secret")
os.environ.setdefault("SANDBOX_ADMIN_API_TOKEN", "demo-admin-api-token")
os.environ.setdefault("ADMIN_API_TOKEN", os.environ["SANDBOX_ADMIN_API_TOKEN"])
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
os.environ.setdefault("NOTIFY_EMAIL_FROM", "agent-console@localhost")

from agentconsole.settings import *  # noqa: F403
from sandbox.settings import *  # noqa: F403

# search_logs is a boto3 CloudWatch Logs client: here it reaches the sandbox's CloudWatch-compatible endpoint
# (set in os.environ so the web server and worker processes the demo starts inherit it).
os.environ.setdefault("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", f"{SANDBOX_URL}/cloudwatch-logs")  # noqa: F405
if AGENT_LLM_PROVIDER == "offline":  # noqa: F405
    # boto3 signs every request, even to the sandbox, which checks no signature: placeholder keys keep the demo
    # offline. With Bedrock, the real credentials sign these requests too.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
