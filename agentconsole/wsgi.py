from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
application = get_wsgi_application()

from agentconsole.tracing import tracing_configure  # noqa: E402 - needs the settings loaded above

# Each gunicorn worker imports this module after the fork, so each gets its own exporter thread.
tracing_configure(process="web")

# What is loaded by now (Django, the apps and their modules, ~100k objects) lives as long as the worker: out of the
# cyclic collector's sight, its full collections walk only what requests made. Walking it all took ~120 ms of CPU
# on the shared 2-core machine, inside whichever request set it off (bench/pages.py's p95 outliers).
gc.freeze()
