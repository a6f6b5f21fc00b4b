"""Test settings with the sandbox company installed: the tests that need a company (the `company` fixture in
tests/conftest.py, tests/sandbox). `make test` runs every other test on agentconsole.settings_test, without it."""

from __future__ import annotations

import os

os.environ.setdefault("SANDBOX_ADMIN_API_TOKEN", "test-admin-api-token")

from agentconsole.settings_test import *  # noqa: F403
from sandbox.settings import *  # noqa: F403
