from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
application = get_wsgi_application()

from agentconsole.tracing import tracing_configure  # noqa: E402 - needs the settings loaded above

# Each gunicorn worker imports this module after the fork, so each gets its own exporter thread.
tracing_configure(process="web")
