"""Django settings for Agent Console. Every value comes from the environment; see the README's table."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from agentconsole.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_pods,
    env_prices,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("AGENTCONSOLE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)

# A development key is only acceptable while DEBUG is on; production must provide one.
_DEV_SECRET_KEY = "django-insecure-agent-console-development-only"  # noqa: S105 - DEBUG only
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "agentconsole",  # the workers' heartbeat (agentconsole/models.py)
    "ninja",  # serves its bundled Swagger UI for /api/docs: nothing loads from a CDN
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "audit",
    "tickets",
    "agent",
    "console",
]

MIDDLEWARE = [
    # The Zendesk webhook, answered before everything else: it proves itself by its signature and needs none of
    # the stack below; it keeps the request id, ALLOWED_HOSTS and the HTTPS redirect (see agent/webhook.py)
    "agent.webhook.zendesk_webhook_middleware",
    # /healthz, /readyz and /metrics, answered before host checks and the HTTPS redirect (see agentconsole/health.py)
    "agentconsole.health.ops_endpoints_middleware",
    "django.middleware.security.SecurityMiddleware",
    "agentconsole.logs.request_context_middleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.HtmxLoginRedirectMiddleware",
    # Last, as django-axes requires: it turns a lockout raised during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# Login throttling on every login form (the console's and the Django admin's): django-axes counts failures per
# username and client address and refuses that pair for a while after too many.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "console.auth.login_client_address"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Content-Security-Policy on every response: scripts, styles and everything else only from this site. The
# templates hold no inline script, style or event handler, and htmx is configured not to inject its own styles
# (see templates/base.html), so no 'unsafe-inline' is needed anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

ROOT_URLCONF = "agentconsole.urls"
WSGI_APPLICATION = "agentconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'agentconsole.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        # A kept connection is checked before its first use in each request or task (Celery's Django fix-up
        # starts every task like a request), so one a database failover or network cut left dead is replaced
        # instead of failing the first query.
        conn_health_checks=True,
    )
}

# Server-side parameters, and a statement sent twice on a connection is prepared there: PostgreSQL then skips
# parsing and planning it, a third of its CPU per model turn in bench/throughput.py. Off by default: RDS Proxy pins a
# session that prepares statements, and PgBouncer in transaction mode needs 1.21+ with max_prepared_statements.
DATABASE_SERVER_SIDE_BINDING = env_bool("DATABASE_SERVER_SIDE_BINDING", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_SERVER_SIDE_BINDING:
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database serves the web server and the worker's threads at once. IMMEDIATE transactions take
    # the write lock up front (a deferred one that upgrades later fails at once with "database is locked"), WAL
    # lets readers run beside the writer, and the timeout makes writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
# Production serves static files itself through WhiteNoise, from `collectstatic`'s output: compressed, with hashed
# names cached for a year. Debug (`make demo`) serves them from the apps as they are.
if not DEBUG:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security: secure by default whenever DEBUG is off -------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

AWS_REGION = env_str("AWS_REGION", "us-east-1")

# --- Celery ---------------------------------------------------------------------------------------------------
# The embedded default is kombu's filesystem transport under var/, so the demo needs no Redis.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "agentconsole")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery" / "queue"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
# A message a worker took but never acknowledged (the worker died) is delivered again after this long. Keep it
# above the longest model turn (BEDROCK_TIMEOUT_SECONDS x BEDROCK_MAX_ATTEMPTS). Every other timing of the Redis
# transport's redelivery is derived from it, so there is one number to reason about.
CELERY_VISIBILITY_TIMEOUT_SECONDS = env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 900, minimum=1)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS,
        # How often workers sweep for such messages: a sweep is one cheap sorted-set range query.
        "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT_SECONDS // 4)),
        "unacked_restore_throttle": 1,
        # The lock one sweep holds. kombu keeps it 300 s, so a worker killed mid-sweep delayed every redelivery
        # by five minutes whatever the visibility timeout said; a sweep takes well under a second.
        "unacked_mutex_expire": max(1, min(30, CELERY_VISIBILITY_TIMEOUT_SECONDS // 4)),
        # Fail fast when the broker is unreachable (the default waits for the operating system's TCP timeout):
        # the webhook answers whatever the broker does, and the reconciler sends what could not be sent.
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "retry_on_timeout": True,
    }
if CELERY_BROKER_URL.startswith("sqs://"):
    # Amazon SQS: credentials from the standard chain (the task role), AWS_ENDPOINT_URL_SQS for a VPC endpoint.
    # With CELERY_SQS_QUEUE_URL the queue is used as it is (no sqs:CreateQueue or sqs:ListQueues needed).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "region": AWS_REGION,
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS,
        "wait_time_seconds": env_int("CELERY_SQS_WAIT_TIME_SECONDS", 10, minimum=0),
        "polling_interval": 1,
    }
    _sqs_queue_url = env_str("CELERY_SQS_QUEUE_URL", "")
    if _sqs_queue_url:
        CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"] = {CELERY_TASK_DEFAULT_QUEUE: {"url": _sqs_queue_url}}
# Sending a task retries briefly, then gives up: the run's own row (dispatch token and time) is the outbox.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits out a broker outage instead of exiting
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Threads cannot be cancelled; a task still running when the broker connection drops finishes, and its message
# comes back later as a no-op (the run's lease and dispatch token see to that).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One number sizes a worker: its threads, the Bedrock client's connection pool, and the database connections it
# keeps (one per thread). A worker started with more threads than this refuses to start (agentconsole/celery.py).
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 32, minimum=1)
CELERY_WORKER_CONCURRENCY = WORKER_CONCURRENCY
# Worker processes per machine (`python -m agentconsole.worker` starts them): one process runs Python on one core at
# a time, so about one per core. The machine's workers keep WORKER_PROCESSES x WORKER_CONCURRENCY database
# connections; a worker refuses to start when PostgreSQL's max_connections cannot hold them.
WORKER_PROCESSES = env_int("WORKER_PROCESSES", 2, minimum=1)
WORKER_CHECK_DB_CONNECTIONS = env_bool("WORKER_CHECK_DB_CONNECTIONS", True)
# Celery's Django fix-up closes a thread's database connection around every task, so each turn opened a new one.
# It closes them only this rarely; agentconsole/celery.py closes old or broken ones around each task instead, as
# Django does around a request (DATABASE_CONN_MAX_AGE, health checks).
CELERY_DB_REUSE_MAX = 1_000_000
# With the Redis broker a run's next turn is sent ahead of new tickets' first turns (0 is the highest priority
# there; agent.services.runs sends first turns at NEW_RUN_PRIORITY), so a ticket in progress is not queued behind every
# new one. SQS has no priorities: there, turns go in arrival order.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"] = [0, 3, 6, 9]

# --- The scheduler (celery beat) -------------------------------------------------------------------------------
# Periodic tasks. Run exactly one scheduler: `celery -A agentconsole beat` (production), or `worker -B`
# (`make demo`). Each entry expires after one interval, so sweeps missed during an outage do not pile up.
AGENT_RECONCILE_INTERVAL_SECONDS = env_int("AGENT_RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "agent-runs-reconcile": {
        "task": "agent.tasks.agent_runs_reconcile_task",
        "schedule": float(AGENT_RECONCILE_INTERVAL_SECONDS),
        "options": {"expires": float(AGENT_RECONCILE_INTERVAL_SECONDS)},
    },
}
# Webhook events stored but not applied this long after their message was sent are sent again (the same sweep).
WEBHOOK_EVENT_STALE_SECONDS = env_int("WEBHOOK_EVENT_STALE_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE["webhook-events-redispatch"] = {
    "task": "agent.tasks.zendesk_events_redispatch_task",
    "schedule": float(AGENT_RECONCILE_INTERVAL_SECONDS),
    "options": {"expires": float(AGENT_RECONCILE_INTERVAL_SECONDS)},
}
CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celery" / "beat-schedule"))

# --- Zendesk --------------------------------------------------------------------------------------------------
ZENDESK_WEBHOOK_SECRET = env_secret("ZENDESK_WEBHOOK_SECRET", "")
ZENDESK_WEBHOOK_MAX_SKEW_SECONDS = env_int("ZENDESK_WEBHOOK_MAX_SKEW_SECONDS", 300, minimum=1)
ZENDESK_WEBHOOK_MAX_BODY_BYTES = env_int("ZENDESK_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
ZENDESK_SUBDOMAIN = env_str("ZENDESK_SUBDOMAIN", "")
ZENDESK_EMAIL = env_str("ZENDESK_EMAIL", "")
ZENDESK_API_TOKEN = env_secret("ZENDESK_API_TOKEN", "")
# Overrides https://<subdomain>.zendesk.com, e.g. for a proxy or a local stand-in.
ZENDESK_API_URL = env_str("ZENDESK_API_URL", "")
ZENDESK_TIMEOUT_SECONDS = env_float("ZENDESK_TIMEOUT_SECONDS", 10.0, minimum=0.1)

# Read from the ticket, its comments, requester and organization; ZENDESK_API_URL can point at a local stand-in.
ZENDESK_MAX_ATTEMPTS = env_int("ZENDESK_MAX_ATTEMPTS", 3, minimum=1)
# A 429's Retry-After up to this long is waited out in the worker; a longer one retries the task later instead.
ZENDESK_MAX_RETRY_AFTER_SECONDS = env_int("ZENDESK_MAX_RETRY_AFTER_SECONDS", 30, minimum=0)
ZENDESK_MAX_COMMENT_PAGES = env_int("ZENDESK_MAX_COMMENT_PAGES", 20, minimum=1)
# Where a ticket's tenant comes from when no admin linked its organization by hand: "" (manual links only),
# "external_id" (the organization's external id) or "organization_field:<field key>".
ZENDESK_TENANT_FROM = env_str("ZENDESK_TENANT_FROM", "")
if ZENDESK_TENANT_FROM not in ("", "external_id") and not (
    ZENDESK_TENANT_FROM.startswith("organization_field:") and len(ZENDESK_TENANT_FROM) > len("organization_field:")
):
    raise ImproperlyConfigured(
        'ZENDESK_TENANT_FROM must be empty, "external_id" or "organization_field:<field key>", '
        f"got {ZENDESK_TENANT_FROM!r}."
    )

# The Zendesk sidebar app (zendesk_app/): the signed-URL JWT is verified with the app's shared secret (HS256) or
# its public key (RS256, PEM); at least one is needed for the sidebar to accept anyone.
ZENDESK_APP_SHARED_SECRET = env_secret("ZENDESK_APP_SHARED_SECRET", "")
ZENDESK_APP_PUBLIC_KEY = env_secret("ZENDESK_APP_PUBLIC_KEY", "").replace("\\n", "\n")
ZENDESK_APP_AUDIENCE = env_str("ZENDESK_APP_AUDIENCE", "")
ZENDESK_APP_SESSION_SECONDS = env_int("ZENDESK_APP_SESSION_SECONDS", 3600, minimum=60)
# The Zendesk Apps Framework SDK the sidebar page loads inside Zendesk to learn which ticket is open (Zendesk's
# own script; empty: the page relies on the ticket_id it is given).
ZENDESK_APP_SDK_URL = os.environ.get(
    "ZENDESK_APP_SDK_URL", "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
).strip()
# Who may frame the sidebar page (CSP frame-ancestors). The console's other pages are never framed.
ZENDESK_APP_FRAME_ANCESTORS = env_list(
    "ZENDESK_APP_FRAME_ANCESTORS",
    [f"https://{ZENDESK_SUBDOMAIN}.zendesk.com"] if ZENDESK_SUBDOMAIN else ["https://*.zendesk.com"],
)


# Engineering pods the agent may route to, each with the helpdesk group id and what it owns (the model and the
# triage note say why a pod was chosen); the format and the defaults are in agentconsole/env.py (env_pods).
_POD_SPECS = env_pods("HELPDESK_PODS")
HELPDESK_PODS = {name: group for name, (group, _) in _POD_SPECS.items()}
HELPDESK_POD_DESCRIPTIONS = {name: description for name, (_, description) in _POD_SPECS.items()}
if "humans" not in HELPDESK_PODS:
    raise ImproperlyConfigured('HELPDESK_PODS must include a "humans" pod for escalations.')

# --- The company's systems the agent's tools reach ----------------------------------------------------------
# No default points anywhere: a setting left out fails the tool that needs it with a message naming it. The
# sandbox company (sandbox/settings_demo.py, sandbox/settings_test.py) sets them for the demo and the tests.

# Read-only SQL over the support views. Empty DSN: derive one from the default database (role below on
# PostgreSQL, a read-only file handle on SQLite).
SUPPORT_SQL_DATABASE_URL = env_secret("SUPPORT_SQL_DATABASE_URL", "")
SUPPORT_SQL_ROLE = env_str("SUPPORT_SQL_ROLE", "agentconsole_support_ro")
SUPPORT_SQL_VIEWS = env_list(
    "SUPPORT_SQL_VIEWS",
    [
        "support_tenant_overview",
        "support_tenant_users",
        "support_login_attempts",
        "support_subscriptions",
        "support_invoices",
        "support_tenant_config",
    ],
)
SUPPORT_SQL_TENANT_SETTING = "agentconsole.tenant_id"
SUPPORT_SQL_STATEMENT_TIMEOUT_MS = env_int("SUPPORT_SQL_STATEMENT_TIMEOUT_MS", 2000, minimum=100)
SUPPORT_SQL_ROW_CAP = env_int("SUPPORT_SQL_ROW_CAP", 200, minimum=1)

# The company's internal Admin API: every write goes through it, never to a database.
ADMIN_API_URL = env_str("ADMIN_API_URL", "")
ADMIN_API_TOKEN = env_secret("ADMIN_API_TOKEN", "")
# "bearer": send ADMIN_API_TOKEN. "api_key": send ADMIN_API_KEY in the header ADMIN_API_KEY_HEADER. "oauth2": an
# OAuth2 client-credentials token from ADMIN_API_OAUTH_TOKEN_URL, cached and refreshed. "sigv4": sign each request
# for API Gateway's IAM authorization (execute-api), as the agent's role (AGENT_ROLE_ARN) or the task's role.
ADMIN_API_AUTH = env_choice("ADMIN_API_AUTH", "bearer", ("bearer", "api_key", "oauth2", "sigv4", "none"))
ADMIN_API_KEY = env_secret("ADMIN_API_KEY", "")
ADMIN_API_KEY_HEADER = env_str("ADMIN_API_KEY_HEADER", "X-API-Key")
ADMIN_API_OAUTH_TOKEN_URL = env_str("ADMIN_API_OAUTH_TOKEN_URL", "")
ADMIN_API_OAUTH_CLIENT_ID = env_str("ADMIN_API_OAUTH_CLIENT_ID", "")
ADMIN_API_OAUTH_CLIENT_SECRET = env_secret("ADMIN_API_OAUTH_CLIENT_SECRET", "")
ADMIN_API_OAUTH_SCOPE = env_str("ADMIN_API_OAUTH_SCOPE", "")
ADMIN_API_SIGV4_SERVICE = env_str("ADMIN_API_SIGV4_SERVICE", "execute-api")
ADMIN_API_TIMEOUT_SECONDS = env_float("ADMIN_API_TIMEOUT_SECONDS", 5.0, minimum=0.1)
ADMIN_API_MAX_ATTEMPTS = env_int("ADMIN_API_MAX_ATTEMPTS", 3, minimum=1)

# Logs: CloudWatch Logs through boto3; boto3's own AWS_ENDPOINT_URL_CLOUDWATCH_LOGS points it at a VPC endpoint or
# at a stand-in (the sandbox's, in the demo).
LOGS_GROUP_NAME = env_str("LOGS_GROUP_NAME", "")
# Where a log event names its tenant: "stream" (one log stream per tenant, named by its id) or "field" (every event
# carries LOGS_TENANT_FIELD; searched with CloudWatch Logs Insights, filtered on it first).
LOGS_TENANT_BINDING = env_choice("LOGS_TENANT_BINDING", "stream", ("stream", "field"))
LOGS_TENANT_FIELD = env_str("LOGS_TENANT_FIELD", "tenant_id")
AGENT_ROLE_ARN = env_str("AGENT_ROLE_ARN", "")

# --- The agent ------------------------------------------------------------------------------------------------
AGENT_LLM_PROVIDER = env_choice("AGENT_LLM_PROVIDER", "offline", ("offline", "bedrock"))
BEDROCK_MODEL_ID = env_str("BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-6")
BEDROCK_GUARDRAIL_ID = env_str("BEDROCK_GUARDRAIL_ID", "")
BEDROCK_GUARDRAIL_VERSION = env_str("BEDROCK_GUARDRAIL_VERSION", "DRAFT")
BEDROCK_MAX_ATTEMPTS = env_int("BEDROCK_MAX_ATTEMPTS", 6, minimum=1)
BEDROCK_TIMEOUT_SECONDS = env_int("BEDROCK_TIMEOUT_SECONDS", 60, minimum=1)
BEDROCK_MAX_OUTPUT_TOKENS = env_int("BEDROCK_MAX_OUTPUT_TOKENS", 2048, minimum=64)
AGENT_MAX_STEPS = env_int("AGENT_MAX_STEPS", 40, minimum=2)
AGENT_MAX_ACTIVE_SECONDS = env_int("AGENT_MAX_ACTIVE_SECONDS", 300, minimum=1)
AGENT_MAX_TOKENS_PER_RUN = env_int("AGENT_MAX_TOKENS_PER_RUN", 200_000, minimum=1000)
AGENT_LEASE_SECONDS = env_int("AGENT_LEASE_SECONDS", 180, minimum=5)
# The reconciler restarts a run whose last dispatch no worker picked up within this long (keep it above the
# usual queue wait), and hands a run to humans after this many restarts.
AGENT_RUN_STALE_SECONDS = env_int("AGENT_RUN_STALE_SECONDS", 120, minimum=1)
AGENT_RUN_MAX_RECOVERIES = env_int("AGENT_RUN_MAX_RECOVERIES", 5, minimum=0)

# What a workflow must show before an admin may promote it to autonomous without an override.
AUTONOMY_MIN_REVIEWED = env_int("AUTONOMY_MIN_REVIEWED", 30, minimum=0)
AUTONOMY_MIN_UNEDITED_APPROVAL_RATE = env_float("AUTONOMY_MIN_UNEDITED_APPROVAL_RATE", 0.95, minimum=0.0)
AUTONOMY_MAX_FAILED_VERIFICATIONS = env_int("AUTONOMY_MAX_FAILED_VERIFICATIONS", 0, minimum=0)
# Promotion from shadow to triage: reviewers' ratings of the version's drafts.
TRIAGE_MIN_RATINGS = env_int("TRIAGE_MIN_RATINGS", 5, minimum=0)
TRIAGE_MIN_THUMBS_UP_RATE = env_float("TRIAGE_MIN_THUMBS_UP_RATE", 0.8, minimum=0.0)
# Replays: how many past tickets one covers, and whether an admin may let unrecorded reads run live (read-only).
REPLAY_MAX_TICKETS = env_int("REPLAY_MAX_TICKETS", 200, minimum=1)
REPLAY_LIVE_READS_ALLOWED = env_bool("REPLAY_LIVE_READS_ALLOWED", False)

# The dashboard's estimates: model prices and the reviewer time one ticket takes by hand.
BEDROCK_INPUT_USD_PER_MTOK = env_float("BEDROCK_INPUT_USD_PER_MTOK", 3.0, minimum=0.0)
BEDROCK_OUTPUT_USD_PER_MTOK = env_float("BEDROCK_OUTPUT_USD_PER_MTOK", 15.0, minimum=0.0)
BEDROCK_CACHE_READ_USD_PER_MTOK = env_float("BEDROCK_CACHE_READ_USD_PER_MTOK", 0.3, minimum=0.0)
BEDROCK_CACHE_WRITE_USD_PER_MTOK = env_float("BEDROCK_CACHE_WRITE_USD_PER_MTOK", 3.75, minimum=0.0)
# Prices of other models than the one above, by a part of their id: a run is priced by the model that ran it.
BEDROCK_MODEL_PRICES = env_prices("BEDROCK_MODEL_PRICES")
REVIEWER_MINUTES_PER_TICKET = env_float("REVIEWER_MINUTES_PER_TICKET", 12.0, minimum=0.0)

# --- Operations: health, metrics, logs, traces -------------------------------------------------------------------
# /metrics (web) and the worker's exporter want `Authorization: Bearer <token>`; without a token /metrics is off.
METRICS_TOKEN = env_secret("METRICS_TOKEN", "")
# host:port where each worker serves its own /metrics and /healthz; empty: none. Port 0 picks a free port (logged).
METRICS_WORKER_ADDRESS = env_str("METRICS_WORKER_ADDRESS", "")
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 15, minimum=1)
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env_int("WORKER_HEARTBEAT_MAX_AGE_SECONDS", 60, minimum=2)
if WORKER_HEARTBEAT_MAX_AGE_SECONDS <= WORKER_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("WORKER_HEARTBEAT_MAX_AGE_SECONDS must be longer than WORKER_HEARTBEAT_SECONDS.")

# Traces go out over OTLP/HTTP (protobuf) only when an endpoint is set.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
OTEL_EXPORTER_OTLP_HEADERS = env_secret("OTEL_EXPORTER_OTLP_HEADERS", "")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "agent-console")

# --- Reviewers: notifications and approval SLAs ---------------------------------------------------------------
# Links in notifications point here (the console's public address).
CONSOLE_BASE_URL = env_str("CONSOLE_BASE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}").rstrip("/")
# A pending proposal escalates (note, humans pod, notification) after this long; a workflow may override it.
APPROVAL_SLA_MINUTES = env_int("APPROVAL_SLA_MINUTES", 60, minimum=0)
# How often Celery beat runs the SLA sweep.
APPROVAL_SLA_SWEEP_SECONDS = env_int("APPROVAL_SLA_SWEEP_SECONDS", 60, minimum=5)
# Slack: an incoming webhook (one fixed channel), or a bot token posting to the workflow's channel or this one.
SLACK_WEBHOOK_URL = env_secret("SLACK_WEBHOOK_URL", "")
SLACK_BOT_TOKEN = env_secret("SLACK_BOT_TOKEN", "")
SLACK_CHANNEL = env_str("SLACK_CHANNEL", "")
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api/")
SLACK_TIMEOUT_SECONDS = env_int("SLACK_TIMEOUT_SECONDS", 10, minimum=1)
# E-mail through Django's mail (any backend: SMTP, or an anymail ESP backend). Empty NOTIFY_EMAIL_FROM: no e-mail.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10, minimum=1)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")  # for the file backend the demo uses
NOTIFY_EMAIL_FROM = env_str("NOTIFY_EMAIL_FROM", "")
DEFAULT_FROM_EMAIL = NOTIFY_EMAIL_FROM or "agent-console@localhost"

# The scheduler's second periodic task (the first, the reconciler, is with the Celery settings above).
CELERY_BEAT_SCHEDULE["approval-sla-sweep"] = {
    "task": "agent.tasks.approval_sla_sweep_task",
    "schedule": float(APPROVAL_SLA_SWEEP_SECONDS),
    "options": {"expires": float(APPROVAL_SLA_SWEEP_SECONDS)},
}

# --- Logging --------------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "agentconsole.logs.JsonFormatter"},
        "plain": {"()": "agentconsole.logs.PlainFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # One JSON object per line in production; the classic line for people running `make demo`.
            "formatter": env_choice("LOG_FORMAT", "plain" if DEBUG else "json", ("json", "plain")),
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
    },
}
