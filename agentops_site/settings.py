"""Settings, all from environment variables (see .env.example for every one).

Development (`AGENTOPS_ENV=development`, the default) runs on a SQLite file with a
generated secret; anything else refuses to start without `SECRET_KEY`. Every variable
`NAME` may instead be given as `NAME_FILE` pointing at a file (Docker/Kubernetes secrets).
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

AGENTOPS_ENV = env.str("AGENTOPS_ENV", default="development")
if AGENTOPS_ENV not in {"development", "production", "test"}:
    raise environ.ImproperlyConfigured(
        f"AGENTOPS_ENV must be development, production or test, not {AGENTOPS_ENV!r}"
    )
DEVELOPMENT = AGENTOPS_ENV != "production"

DEBUG = env.bool("DEBUG", default=False)

# Local state of the embedded default: the SQLite file, the development secret and the
# demo login. Ignored by git.
VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var")

if DEVELOPMENT:
    # A fixed development secret would let anyone forge sessions on an exposed dev box,
    # so it is generated once per checkout and kept beside the database.
    _secret_file = Path(VAR_DIR) / "secret_key"
    if "SECRET_KEY" not in env and "SECRET_KEY_FILE" not in env:
        _secret_file.parent.mkdir(parents=True, exist_ok=True)
        if not _secret_file.exists():
            import secrets

            _secret_file.write_text(secrets.token_urlsafe(50))
        SECRET_KEY = _secret_file.read_text().strip()
    else:
        SECRET_KEY = env.str("SECRET_KEY")
else:
    SECRET_KEY = env.str("SECRET_KEY")  # raises ImproperlyConfigured when missing

# Where the console tells users to point their exporters (shown in empty states).
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000")

# In production the console answers to the host of its public URL unless told otherwise.
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]"]
    if DEVELOPMENT
    else [urlsplit(PUBLIC_URL).hostname or "localhost"],
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A form refused by the CSRF check: the console's page, with its navigation.
CSRF_FAILURE_VIEW = "console.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files for /api/docs/, served from static/
    "axes",  # failed-login lockout (see "Logins" below)
    "csp",
    "traces",
    "rollouts",
    "budgets",
    "controls",
    "console",
    "agentops_site",  # site-wide management commands (up)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A database outage raised by a view is a 503 page or JSON body (handler500 in
    # urls.py covers the ones raised by the middleware below).
    "agentops_site.outage.OutageMiddleware",
    # A NUL in the URL or query string is a 400, not a PostgreSQL error in some filter.
    "agentops_site.nul.RefuseNulMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times shown in the person's zone: chosen > browser cookie > TIME_ZONE.
    "traces.timezones.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: turns a lockout raised anywhere below into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "agentops_site.urls"

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
                "console.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "agentops_site.wsgi.application"
ASGI_APPLICATION = "agentops_site.asgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{Path(VAR_DIR) / 'agentops.sqlite3'}")
}
# Each web server thread (WEB_THREADS per process) keeps its connection between requests;
# CONN_HEALTH_CHECKS makes a restarted database cost no failed request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# PostgreSQL's JIT compiles a query whose estimated cost is high, and a query over many
# partitions (a month of daily span partitions) is estimated high however little it reads:
# the 30-second contract-check pass spent 0.7 s of its 0.75 s compiling. Off for the
# console's sessions unless POSTGRES_JIT is set (behind a pooler that refuses startup
# options, e.g. PgBouncer without ignore_startup_parameters, set it and `jit = off` on the
# server instead).
POSTGRES_JIT = env.bool("POSTGRES_JIT", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not POSTGRES_JIT:
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c jit=off".strip()
# Where spans are stored (traces/spanstore, docs/span-store.md): empty = the relational
# database above; clickhouse://user:password@host:8123/db, or chdb:///path (in-process).
SPAN_STORE_URL = env.str("SPAN_STORE_URL", default="")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(VAR_DIR).mkdir(parents=True, exist_ok=True)
    # WAL lets the pages read while ingestion writes; IMMEDIATE avoids the
    # "database is locked" upgrade deadlock between two writers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests use a file, not memory: the live server and the outage test need to
    # open and close real connections.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(
        Path(VAR_DIR) / f"test-{os.getpid()}.sqlite3"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Storage is always UTC; TIME_ZONE is what pages show when a user has not chosen one.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # vendor/plotly.min.js, straight from the installed plotly package (no CDN, no copy).
    "agentops_site.staticfiles.PlotlyFinder",
]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEVELOPMENT
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEVELOPMENT
if DEVELOPMENT:
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEVELOPMENT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# A deployment served over HTTPS (SECURE_COOKIES) also redirects plain HTTP and sends HSTS.
# healthz stays reachable over plain HTTP for health checks inside the network.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SESSION_COOKIE_SECURE)
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$"])
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# Content Security Policy (django-csp). Scripts only from our own static files (no inline
# script, no eval); JSON data blocks (json_script) are not scripts. Styles allow
# 'unsafe-inline': plotly.js sets inline styles on the SVG it draws, and usage bars are
# sized with style attributes. CSS cannot run script, and with img/font/connect limited
# to 'self' it cannot send data elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],  # plotly's modebar icons and exports are data: URIs
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# ------------------------------------------------------------------ logins
# Failed logins (form, admin, HTTP Basic on the API) are counted by django-axes per
# username + address and per address; past either limit the address, or that user from
# it, is refused with 429 until the cool-off has passed since the last failure. A
# different address is not locked out of the user's account by the first limit.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_LOCKOUTS = [
    (["username", "ip_address"], env.int("LOGIN_FAILURES_PER_USER_AND_ADDRESS", default=5)),
    (["ip_address"], env.int("LOGIN_FAILURES_PER_ADDRESS", default=10)),
]
AXES_LOCKOUT_PARAMETERS = [params for params, _limit in LOGIN_LOCKOUTS]
AXES_HANDLER = "traces.login_throttle.LoginThrottleHandler"
AXES_FAILURE_LIMIT = max(limit for _params, limit in LOGIN_LOCKOUTS)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
# Attempts while locked out are refused without being counted, so the cool-off ends when
# the message says it does.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "traces.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "traces.login_throttle.client_address"
# Behind a proxy the client's address is the last X-Forwarded-For entry the proxy added.
LOGIN_ADDRESS_FROM_FORWARDED_FOR = env.bool(
    "LOGIN_ADDRESS_FROM_FORWARDED_FOR", default=BEHIND_TLS_PROXY
)
AXES_USERNAME_CALLABLE = "traces.login_throttle.client_username"
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_DISABLE_ACCESS_LOG = True  # successful logins are not the lockout's business
AXES_VERBOSE = False  # no banner on every start; failures and lockouts are still logged

# OTLP ingestion limits. The body limit bounds the request as sent; the decompressed
# limit what it inflates to, checked while inflating, so a gzip bomb is refused early.
OTLP_MAX_BODY_BYTES = env.int("OTLP_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# 4 MiB inflated, gRPC's default message limit that OTLP/gRPC receivers apply: parsing is
# what costs memory before any limit below can act (protobuf takes ~17 bytes per byte of
# tiny nested values, orjson ~21), and at 4 MiB no body passes 210 MB resident.
OTLP_MAX_DECOMPRESSED_BYTES = env.int("OTLP_MAX_DECOMPRESSED_BYTES", default=4 * 1024 * 1024)
# Where `manage.py otlp_grpc` listens for OTLP/gRPC (its decompressed messages are held to
# OTLP_MAX_DECOMPRESSED_BYTES, its exports to INGEST_CONCURRENCY at once per process).
OTLP_GRPC_BIND = env.str(
    "OTLP_GRPC_BIND", default="127.0.0.1:4317" if DEVELOPMENT else "0.0.0.0:4317"
)
# PEM files: with both, the receiver speaks TLS (exporters with insecure=False); without,
# plaintext gRPC, for loopback or behind a TLS-terminating proxy.
OTLP_GRPC_TLS_CERT = env.str("OTLP_GRPC_TLS_CERT", default="")
OTLP_GRPC_TLS_KEY = env.str("OTLP_GRPC_TLS_KEY", default="")
# Sent with every 503 (ingest and pages). The Python exporter gives up at once when
# Retry-After exceeds what is left of its deadline (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by
# default) and stops after 6 attempts: 9 s loses the fewest batches at the default and
# at longer timeouts alike (bench/exporter_outage.py).
OTLP_RETRY_AFTER_SECONDS = env.int("OTLP_RETRY_AFTER_SECONDS", default=9)
# What one trace request may carry (README "Limits"), applied while decoding so that
# no request within them takes a worker past 250 MB resident (bench/ingest_memory.py).
# Spans beyond the first OTLP_MAX_SPANS_PER_REQUEST are rejected in the partial success;
# attributes, events and links beyond theirs are dropped, longer strings are cut to
# OTLP_MAX_VALUE_LENGTH characters and values nested deeper than OTLP_MAX_VALUE_DEPTH
# levels are replaced by a marker, each counted in the answer.
OTLP_MAX_SPANS_PER_REQUEST = env.int("OTLP_MAX_SPANS_PER_REQUEST", default=10_000)
OTLP_MAX_ATTRIBUTES_PER_SPAN = env.int("OTLP_MAX_ATTRIBUTES_PER_SPAN", default=128)
OTLP_MAX_EVENTS_PER_SPAN = env.int("OTLP_MAX_EVENTS_PER_SPAN", default=128)
OTLP_MAX_LINKS_PER_SPAN = env.int("OTLP_MAX_LINKS_PER_SPAN", default=128)
OTLP_MAX_ATTRIBUTES_PER_EVENT = env.int("OTLP_MAX_ATTRIBUTES_PER_EVENT", default=128)
OTLP_MAX_ATTRIBUTES_PER_LINK = env.int("OTLP_MAX_ATTRIBUTES_PER_LINK", default=128)
OTLP_MAX_VALUE_LENGTH = env.int("OTLP_MAX_VALUE_LENGTH", default=65_536)
OTLP_MAX_VALUE_DEPTH = env.int("OTLP_MAX_VALUE_DEPTH", default=16)
OTLP_MAX_NESTED_VALUES_PER_REQUEST = env.int("OTLP_MAX_NESTED_VALUES_PER_REQUEST", default=100_000)
# How long a process may reuse an ingest key check and the price overrides (seconds):
# each was a query on every ingest request. A revoked key is refused, and a new price
# override applies, within this time (0 turns the caching off).
INGEST_KEY_CACHE_SECONDS = env.int("INGEST_KEY_CACHE_SECONDS", default=10)
PRICE_OVERRIDES_CACHE_SECONDS = env.int("PRICE_OVERRIDES_CACHE_SECONDS", default=10)
# Threads per web server process that run requests (agentops_site/asgi.py); ingestion
# takes at most INGEST_CONCURRENCY of them, the rest serve pages and the API.
WEB_THREADS = env.int("WEB_THREADS", default=8)
# Backpressure (agentops_site/admission.py), per web server process: OTLP requests
# served at once, how many more may wait and for how long; past that 429 + Retry-After.
INGEST_CONCURRENCY = env.int("INGEST_CONCURRENCY", default=4)
INGEST_QUEUE = env.int("INGEST_QUEUE", default=8)
INGEST_QUEUE_WAIT_SECONDS = env.float("INGEST_QUEUE_WAIT_SECONDS", default=2.0)
INGEST_BUSY_RETRY_AFTER_SECONDS = env.int("INGEST_BUSY_RETRY_AFTER_SECONDS", default=1)
# A request body must arrive within this time (slow clients hold no worker meanwhile).
REQUEST_BODY_TIMEOUT_SECONDS = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=60.0)
# Django's own cap must not cut the OTLP body before our limit answers 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(OTLP_MAX_BODY_BYTES, 2_621_440)

REST_FRAMEWORK = {
    # The key class comes first so that a missing or bad credential is a 401 with a
    # WWW-Authenticate header, not a 403.
    # Every endpoint takes the same credentials: a project key, a personal token, HTTP
    # Basic (counted by the login lockout) or a login session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "traces.api.authentication.IngestKeyAuthentication",
        "traces.api.authentication.PersonalTokenAuthentication",
        "traces.api.authentication.LockoutBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "traces.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEVELOPMENT else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AgentOps Console API",
    "DESCRIPTION": "Traces, spans, budgets, alerts and cost of the projects you can see.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/: Swagger UI from our static files; its start script is a separate
    # request (SpectacularSwaggerSplitView), so no inline script meets the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TraceStatusEnum": "traces.models.TraceStatus",
        "SpanStatusEnum": "traces.models.SpanStatus",
        "AlertStatusEnum": "budgets.models.Alert.Status",
        "DeliveryStatusEnum": "budgets.models.Delivery.Status",
    },
}

# ------------------------------------------------------------------ Celery
# Production: Redis (CELERY_BROKER_URL=redis://…). The embedded default needs no server:
# kombu's filesystem transport, folders under VAR_DIR, shared by web, worker and beat.
_broker_dir = Path(VAR_DIR) / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # Exchange bindings; kombu puts them in ./control unless told otherwise.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    # Remote control (the pidbox broadcast exchange) is written by several processes at
    # once on this transport and can be left half-written, which stops the worker with a
    # JSONDecodeError (kombu#1551). Nothing here uses remote control.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="agentops")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True  # a task killed mid-way runs again; every task is idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(Path(VAR_DIR) / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"

# The one place the periodic work is declared. Each interval task expires before its
# next run, so a worker that was down does not find a backlog of identical runs.
ROLLUP_EVERY_SECONDS = env.int("ROLLUP_EVERY_SECONDS", default=20)
EVALUATE_EVERY_SECONDS = env.int("EVALUATE_EVERY_SECONDS", default=60)
# Tool spans are checked against their contracts within this many hours of arriving.
CONTRACT_CHECK_WINDOW_HOURS = env.int("CONTRACT_CHECK_WINDOW_HOURS", default=24)
# The same idempotency key executed twice this many hours apart or less is a duplicate.
IDEMPOTENCY_WINDOW_HOURS = env.int("IDEMPOTENCY_WINDOW_HOURS", default=24)
# More attempts than this of one call in one run is a retry storm.
RETRY_STORM_ATTEMPTS = env.int("RETRY_STORM_ATTEMPTS", default=5)
# Every minute, the idempotency and retry detectors read the spans started this many minutes
# back (their cost grows with it); attempts of a call spread over longer are seen in parts.
FINDINGS_WINDOW_MINUTES = env.int("FINDINGS_WINDOW_MINUTES", default=15)
# Approval long-polls (GET /api/approvals/<id>/?wait=): each holds a web thread, so at most
# this many wait at once per web process (the rest answer at once with Retry-After), each
# reading its row every APPROVAL_POLL_SECONDS.
APPROVAL_MAX_WAITERS = env.int("APPROVAL_MAX_WAITERS", default=2)
APPROVAL_POLL_SECONDS = env.float("APPROVAL_POLL_SECONDS", default=0.25)
# Every minute, the review queue reads the spans received this many minutes back for steps
# that cross a review rule (controls/review.py); each span is queued once.
REVIEW_FLAG_WINDOW_MINUTES = env.int("REVIEW_FLAG_WINDOW_MINUTES", default=15)
# Retention (traces/partitions.py): spans, trace summaries and what is derived per span are
# kept this many whole UTC days before today (a project may set its own); rollups, which
# budgets and KPI history read, are kept ROLLUP_RETENTION_DAYS. PostgreSQL keeps daily span
# partitions this many days ahead; deletes run this many rows per statement.
SPAN_RETENTION_DAYS = env.int("SPAN_RETENTION_DAYS", default=30)
ROLLUP_RETENTION_DAYS = env.int("ROLLUP_RETENTION_DAYS", default=400)
SPAN_PARTITION_AHEAD_DAYS = env.int("SPAN_PARTITION_AHEAD_DAYS", default=7)
RETENTION_DELETE_BATCH = env.int("RETENTION_DELETE_BATCH", default=5000)
CELERY_BEAT_SCHEDULE = {
    # Fold new spans, then evaluate the budgets they moved: a chain (agentops_site/celery.py).
    "fold-then-evaluate": {
        "task": "agentops_site.fold_then_evaluate",
        "schedule": ROLLUP_EVERY_SECONDS,
        "options": {"expires": ROLLUP_EVERY_SECONDS},
    },
    "rollup-runs": {
        "task": "rollouts.tasks.rollup_runs",
        "schedule": 60,
        "options": {"expires": 60},
    },
    "evaluate-budgets": {
        "task": "budgets.tasks.evaluate_budgets",
        "schedule": EVALUATE_EVERY_SECONDS,
        "options": {"expires": EVALUATE_EVERY_SECONDS},
    },
    "retry-stuck-deliveries": {
        "task": "budgets.tasks.deliver_pending",
        "schedule": 300,
        "options": {"expires": 300},
    },
    # Tool spans against the contract registry, off the ingest path (controls/checks.py).
    "check-contracts": {
        "task": "controls.tasks.check_contracts",
        "schedule": 30,
        "options": {"expires": 30},
    },
    # Idempotency and retry findings from the same spans (controls/findings.py).
    "detect-findings": {
        "task": "controls.tasks.detect_findings",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Pending approval requests past their deadline become expired (controls/approvals.py).
    "expire-approvals": {
        "task": "controls.tasks.expire_approvals",
        "schedule": 30,
        "options": {"expires": 30},
    },
    # Runs that cross a review rule → the review queue (controls/review.py).
    "flag-review-items": {
        "task": "controls.tasks.flag_review_items",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Review items past their SLA → one alert each through the project's channels
    # (console/review_alerts.py, wired in agentops_site/celery.py).
    "review-sla-alerts": {
        "task": "agentops_site.review_sla_alerts",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Decision records from agentops.decision.* spans (controls/decision_memory.py).
    "record-decisions": {
        "task": "controls.tasks.record_decisions",
        "schedule": 60,
        "options": {"expires": 60},
    },
    # Span partitions ahead, then what is past retention (traces/partitions.py).
    "enforce-retention": {
        "task": "traces.tasks.enforce_retention",
        "schedule": 3600,
        "options": {"expires": 3000},
    },
}

# ------------------------------------------------------------------ alerts
# SMTP for email alerts, e.g. smtp://user:password@mail.example.com:587/?tls=True
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="AgentOps Console <alerts@localhost>")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# Webhook and Slack URLs that resolve to private, loopback or link-local addresses are
# refused unless this is true (a console inside a private network may need it).
ALERTS_ALLOW_PRIVATE_URLS = env.bool("ALERTS_ALLOW_PRIVATE_URLS", default=False)
ALERT_HTTP_TIMEOUT = env.int("ALERT_HTTP_TIMEOUT", default=10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
