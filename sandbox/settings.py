"""What installing the sandbox company adds to the product's settings. Star-imported last by the sandbox's settings
modules (settings_demo.py for `make demo`, settings_test.py for the tests that need a company).

The product's own settings name no sandbox and point nowhere by default; these point the company settings at the
sandbox, served by the same site under /sandbox/ (sandbox/site_urls.py): the Admin API over HTTP, and CloudWatch
Logs through boto3's AWS_ENDPOINT_URL_CLOUDWATCH_LOGS (set by settings_demo.py, and per test by the `company` fixture).
"""

from __future__ import annotations

from agentconsole.env import env_int, env_secret, env_str
from agentconsole.settings import INSTALLED_APPS as _PRODUCT_APPS

INSTALLED_APPS = [*_PRODUCT_APPS, "sandbox"]
ROOT_URLCONF = "sandbox.site_urls"

SANDBOX_URL = f"http://127.0.0.1:{env_int('PORT', 8000)}/sandbox"
ADMIN_API_URL = env_str("ADMIN_API_URL", f"{SANDBOX_URL}/admin-api/v1")
LOGS_GROUP_NAME = env_str("LOGS_GROUP_NAME", "/company/app")

# The sandbox's own settings.
SANDBOX_ADMIN_API_TOKEN = env_secret("SANDBOX_ADMIN_API_TOKEN", "")
SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS = env_int("SANDBOX_CACHE_RESET_MIN_INTERVAL_SECONDS", 60, minimum=0)
