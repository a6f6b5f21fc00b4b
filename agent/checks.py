"""Startup checks (`manage.py check`, migrate, runserver): the company's systems the tools reach are configured.

No default points at the sandbox company, so a setting forgotten in production is named here at startup, and the
tool that needs it fails with an error when called, instead of reading stand-in data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

UNSET = "{name} is not set: {consequence}"
COMPANY_SETTINGS = {
    "ADMIN_API_URL": ("agent.W001", "every Admin API tool (reads and writes) fails until it names the company's API."),
    "LOGS_GROUP_NAME": ("agent.W002", "search_logs fails until it names the company's CloudWatch log group."),
}


@checks.register()
def company_settings_check(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Warning(UNSET.format(name=name, consequence=consequence), id=check_id)
        for name, (check_id, consequence) in COMPANY_SETTINGS.items()
        if not getattr(settings, name, "")
    ]
