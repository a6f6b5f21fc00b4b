# Agent Console: one image for the web (gunicorn), the Celery workers and the scheduler (celery beat).
# Build: docker build -t agent-console .   Run: see compose.yaml and docs/deploy-aws.md.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The same pinned requirements and constraints as `make demo` and `make test`; every wheel is prebuilt (pycurl and
# psycopg bring their own libraries), so the image needs no compiler and no apt packages.
COPY requirements.txt constraints.txt /tmp/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=agentconsole.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    AGENTCONSOLE_VAR_DIR=/var/lib/agentconsole \
    PORT=8000
RUN groupadd --system --gid 10001 agentconsole \
    && useradd --system --uid 10001 --gid agentconsole --home-dir /app --shell /usr/sbin/nologin agentconsole \
    && mkdir -p /var/lib/agentconsole/beat \
    && chown -R agentconsole:agentconsole /var/lib/agentconsole
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY . /app
# Static files are collected at build time (WhiteNoise serves them with hashed names); the key is a build-time
# placeholder that no running container uses.
RUN DJANGO_SECRET_KEY=collectstatic-only-build-placeholder python manage.py collectstatic --no-input
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=3)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "agentconsole.wsgi"]
