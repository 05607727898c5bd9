"""Texture Portal settings, read from the environment.

Embedded defaults (no variables set): SQLite under var/, Celery tasks run eagerly in-process, OEM adapters
point at the project's own OEM simulator. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL
(Redis), SECRET_KEY, FIELD_ENCRYPTION_KEYS, ALLOWED_HOSTS and DEBUG=0; see README.md.
"""

import json
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from texture_portal.env import (
    env_bool,
    env_int,
    env_list,
    env_str,
    local_secret,
    make_fernet_key,
    make_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TEXTURE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or local_secret(VAR_DIR / "secret_key", make_secret_key)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # the admin's theme (a modern console; its CSS, fonts and scripts ship in the package: works offline)
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from static files (no CDN)
    "import_export",
    "texture_portal",
    "texture_portal.events",
    "integrations",
    "fleet",
    "programs",
    "dispatch",
]

# The admin's theme (django-unfold): a console by role. Each role's home, its navigation and the search box of
# every page are composed from what the apps register (texture_portal.home); the CSS, fonts and scripts are
# served from the packages (no CDN: the console works offline).
UNFOLD = {
    "SITE_TITLE": "Texture Portal",
    "SITE_HEADER": "Texture Portal",
    "SITE_SUBHEADER": "DER program operations",
    "SITE_SYMBOL": "bolt",
    "SITE_URL": "/admin/",
    "DASHBOARD_CALLBACK": "texture_portal.home.dashboard",
    "STYLES": ["texture_portal.home.console_styles"],
    "SIDEBAR": {
        "show_search": True,
        "command_search": True,
        "show_all_applications": True,
        "navigation": "texture_portal.home.sidebar_navigation",
    },
    "COMMAND": {"search_callback": "texture_portal.home.search", "search_models": False},
    "COLORS": {
        "primary": {
            "50": "oklch(97.9% .021 166.113)",
            "100": "oklch(95% .052 163.051)",
            "200": "oklch(90.5% .093 164.15)",
            "300": "oklch(84.5% .143 164.978)",
            "400": "oklch(76.5% .177 163.223)",
            "500": "oklch(69.6% .17 162.48)",
            "600": "oklch(59.6% .145 163.225)",
            "700": "oklch(50.8% .118 165.612)",
            "800": "oklch(43.2% .095 166.913)",
            "900": "oklch(37.8% .077 168.94)",
            "950": "oklch(26.2% .051 172.552)",
        },
    },
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "texture_portal.middleware.CorrelationIdMiddleware",
    # /v1 requests over the size, count and length limits get the API's JSON 400 before anything reads them
    "texture_portal.middleware.ApiRequestLimitsMiddleware",
    # admin requests with NUL bytes or over-long searches and values: a short 400 before any view
    "texture_portal.middleware.AdminInputGuardMiddleware",
    # admin pages in the user's workspace's timezone (after auth, sessions and messages; the API stays UTC)
    "texture_portal.middleware.AdminTimezoneMiddleware",
]

ROOT_URLCONF = "texture_portal.urls"
WSGI_APPLICATION = "texture_portal.wsgi.application"

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
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: WAL lets the dev server and an eager task read while another request writes.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["texture_portal.auth.WorkspaceRoleBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Hashed, compressed file names need `collectstatic` first, so production turns them on explicitly.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST

LOGIN_URL = "admin:login"
# After signing in: the admin index, which is the home of the role held (unfold's login form has no `next` field).
LOGIN_REDIRECT_URL = "admin:index"

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Credentials of OEM integrations are encrypted at rest with Fernet (cryptography). The first key encrypts;
# all keys decrypt, so a key can be rotated by putting the new one first.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", []) or [
    local_secret(VAR_DIR / "field_encryption_key", make_fernet_key)
]

# Celery: without a broker, tasks run eagerly in the calling process (the embedded default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# No task runs longer than this; redelivery after a lost worker waits at most this long.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TIMEZONE = "UTC"

# OEM clouds: each adapter's base URL. The default points every OEM at the project's own simulator.
OEM_SIMULATOR_URL = env_str("OEM_SIMULATOR_URL", "http://127.0.0.1:8100").rstrip("/")
OEM_SLUGS = ("tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar")
OEM_BASE_URLS = {slug: env_str(f"OEM_{slug.upper()}_BASE_URL", f"{OEM_SIMULATOR_URL}/{slug}") for slug in OEM_SLUGS}
# Texture Connect: how long a session's link works; the OEMs' customer sign-in pages and token endpoints when
# they are not at the API's base URL (JSON {channel: url}; integrations.connect.oauth)
CONNECT_LINK_TTL_HOURS = env_int("CONNECT_LINK_TTL_HOURS", 72)
OEM_CONNECT_AUTHORIZE_URLS = json.loads(env_str("OEM_CONNECT_AUTHORIZE_URLS", "{}"))
OEM_CONNECT_TOKEN_URLS = json.loads(env_str("OEM_CONNECT_TOKEN_URLS", "{}"))
OEM_HTTP_TIMEOUT_SECONDS = float(env_str("OEM_HTTP_TIMEOUT_SECONDS", "10"))
# Calls per second (sustained, burst) per OEM across all workers: a token bucket in Redis when one is
# configured, in process memory otherwise. The defaults are what each OEM publishes (docs/oem-apis.md, "Rate
# limits", gives each one's source); set them to what your app or plan is granted. 0: no per-second limit.
OEM_RATE_LIMIT_DEFAULTS = {
    # Tesla Fleet API subscription plans: energy device data and settings, 5 requests/s (and 50k a day)
    "tesla": (5.0, 5.0),
    # FranklinWH's app API publishes none (oem-apis.md §2, community): a polite default
    "franklinwh": (10.0, 20.0),
    # Enphase v4 plans, per minute (oem-apis.md §3, its 429 names the plan and its per-minute `limit`): the
    # Partner plan (installer-maintained systems) 300/min; Watt 10, Kilowatt 50, Megawatt 100 per minute
    "enphase": (5.0, 5.0),
    # SolarEdge (oem-apis.md §4): 300 calls a day per key and per site (paced by the adapter's daily quota,
    # integrations.services.telemetry_pace) and 3 in flight (OEM_CONCURRENCY_LIMITS), no per-second limit
    "solaredge": (0.0, 0.0),
    # Emporia's app API publishes none (oem-apis.md §5, unofficial): a polite default
    "emporia": (10.0, 20.0),
    # ChargePoint's Web Services API: none in oem-apis.md §6 (one getLoad per station group and sync)
    "chargepoint": (10.0, 20.0),
    # Smartcar (oem-apis.md §7): limits are per vehicle (429 with retry-after, per-vehicle monthly plan calls);
    # no app-wide rate is published
    "smartcar": (10.0, 20.0),
}
OEM_RATE_LIMITS = {
    slug: (
        float(env_str(f"OEM_{slug.upper()}_RATE_PER_SECOND", str(OEM_RATE_LIMIT_DEFAULTS[slug][0]))),
        float(env_str(f"OEM_{slug.upper()}_BURST", str(OEM_RATE_LIMIT_DEFAULTS[slug][1]))),
    )
    for slug in OEM_SLUGS
}
# Calls in flight per OEM across all workers (a semaphore in Redis beside the bucket; per process without
# Redis). SolarEdge allows 3 concurrent calls per source IP (oem-apis.md §4); 0: no cap. A caller waits up to
# OEM_CONCURRENCY_WAIT_SECONDS for a slot (then the call fails as transient and is retried); a slot whose
# worker died frees after OEM_CONCURRENCY_LEASE_SECONDS (longer than any call: at least 3 × the HTTP timeout).
OEM_CONCURRENCY_LIMITS = {
    slug: env_int(f"OEM_{slug.upper()}_MAX_CONCURRENT", 3 if slug == "solaredge" else 0) for slug in OEM_SLUGS
}
OEM_CONCURRENCY_WAIT_SECONDS = float(env_str("OEM_CONCURRENCY_WAIT_SECONDS", "60"))
OEM_CONCURRENCY_LEASE_SECONDS = max(float(env_str("OEM_CONCURRENCY_LEASE_SECONDS", "60")), 3 * OEM_HTTP_TIMEOUT_SECONDS)
OEM_RATE_LIMIT_REDIS_URL = env_str("OEM_RATE_LIMIT_REDIS_URL") or env_str("CELERY_BROKER_URL")
# A device is offline after cadence × this factor without a reading (one missed sync is not an outage).
OEM_OFFLINE_GRACE_FACTOR = float(env_str("OEM_OFFLINE_GRACE_FACTOR", "3"))
# Discovery and sync runs are kept this long (the tiles and the run list show them), then deleted daily.
# The customer page's map draws a bundled outline of the US states (works offline). A deployment that can reach a
# tile server may set its URL template (e.g. https://tile.example.org/{z}/{x}/{y}.png) and the attribution its
# licence asks for; empty by default: no request leaves the portal.
MAP_TILE_URL = env_str("MAP_TILE_URL", "")
MAP_TILE_ATTRIBUTION = env_str("MAP_TILE_ATTRIBUTION", "")

INTEGRATION_RUN_RETENTION_DAYS = env_int("INTEGRATION_RUN_RETENTION_DAYS", 30)
# Raw telemetry readings are kept this long (10,000 devices at 5 minutes is 2.9 M a day); their 15-minute
# rollups (fleet.TelemetryRollup) are kept, and are what baselines and reports read beyond it.
TELEMETRY_RAW_RETENTION_DAYS = env_int("TELEMETRY_RAW_RETENTION_DAYS", 35)
# Days of telemetry history read from each OEM's history API when a device is discovered, and kept free of
# gaps by the hourly backfill (event baselines read the ~10 eligible days before an event).
TELEMETRY_HISTORY_DAYS = env_int("TELEMETRY_HISTORY_DAYS", 14)
# Concurrent OEM calls inside one telemetry sync job (threads sharing one pooled session).
OEM_SYNC_CONCURRENCY = env_int("OEM_SYNC_CONCURRENCY", 8)
# Devices per telemetry sync task: a large account is split into tasks that finish well inside the cadence.
OEM_SYNC_BATCH_SIZE = env_int("OEM_SYNC_BATCH_SIZE", 2000)

# The dispatch engine (dispatch.engine): its beat tick, how long a device's telemetry has to confirm a
# command the OEM accepted (at least two of its OEM's cadences), how long a worker may hold a command it is
# sending before another may take it over, and how long a queued command may wait before it is queued again.
DISPATCH_TICK_SECONDS = env_int("DISPATCH_TICK_SECONDS", 15)
DISPATCH_CONFIRM_WINDOW_MINUTES = env_int("DISPATCH_CONFIRM_WINDOW_MINUTES", 15)
DISPATCH_COMMAND_LEASE_SECONDS = env_int("DISPATCH_COMMAND_LEASE_SECONDS", 120)
DISPATCH_REQUEUE_AFTER_SECONDS = env_int("DISPATCH_REQUEUE_AFTER_SECONDS", 300)
# Due commands wait in the database and go to the broker every DISPATCH_QUEUE_SECONDS, each OEM's share
# topped up to what its rate limit lets through in DISPATCH_QUEUE_AHEAD_SECONDS (a slow OEM's backlog never
# fills the broker ahead of the others').
DISPATCH_QUEUE_SECONDS = env_int("DISPATCH_QUEUE_SECONDS", 2)
DISPATCH_QUEUE_AHEAD_SECONDS = env_int("DISPATCH_QUEUE_AHEAD_SECONDS", 6)
# A worker's task sends a batch of at most this many of one OEM's commands; a command meeting transient
# errors is tried this many times in all (backing off between tries) before it is failed.
DISPATCH_SEND_BATCH = env_int("DISPATCH_SEND_BATCH", 20)
DISPATCH_COMMAND_MAX_ATTEMPTS = env_int("DISPATCH_COMMAND_MAX_ATTEMPTS", 5)
# Devices taking part in a running event are read this often (0: each OEM's fastest allowed cadence).
DISPATCH_EVENT_TELEMETRY_SECONDS = env_int("DISPATCH_EVENT_TELEMETRY_SECONDS", 0)


REST_FRAMEWORK = {
    "DEFAULT_FILTER_BACKENDS": ["texture_portal.filters.FilterBackend"],  # django-filter's, releasing its FilterSet
    # The /v1/ API: workspace API keys only (no session cookies, so no CSRF), JSON only.
    "DEFAULT_AUTHENTICATION_CLASSES": ["texture_portal.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["texture_portal.api.permissions.HasWorkspaceApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["texture_portal.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "texture_portal.api.pagination.CursorPagination",
    # DRF's JSON renderer; data a view marks PlainJSON (the device list) is rendered by orjson, same bytes
    "DEFAULT_RENDERER_CLASSES": ["texture_portal.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["texture_portal.api.parsers.JSONParser"],  # depth-limited, refuses NUL
    "DEFAULT_SCHEMA_CLASS": "texture_portal.api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "texture_portal.api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Texture Portal API",
    "DESCRIPTION": "The integrator API of one workspace. See docs/integrators.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/v1",
    # OpenAPI links from a list or create to the operations on the object it returns
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "texture_portal.api.schema.add_operation_links",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # /v1/docs (Swagger UI) and /v1/redoc from the portal's own static files: the docs work offline
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # no "valid" badge from validator.swagger.io: it would send the schema's address to a third party
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "DeviceStateEnum": "fleet.choices.DeviceState",
        "DeviceTypeEnum": "fleet.choices.DeviceType",
        "GridServicesStatusEnum": "fleet.choices.GridServicesStatus",
        "PlatformEventTypeEnum": "texture_portal.events.types.EVENT_TYPE_CHOICES",
        "CommandStatusEnum": "dispatch.choices.CommandStatus",
        "ParticipationStatusEnum": "dispatch.choices.ParticipationStatus",
        "DispatchActionTypeEnum": "programs.choices.EventType",
        "AlertStatusEnum": "fleet.choices.AlertStatus",
        "AlertSeverityEnum": "fleet.choices.AlertSeverity",
        "AlertTypeEnum": "fleet.choices.AlertType",
    },
}
# Per API key: "<requests>/<second|minute|hour>" (documented in docs/integrators.md).
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "600/minute")

# The cache holds the rate-limit counters and the progress of background imports: Redis when REDIS_URL is
# set (shared by the web processes and the workers), otherwise local memory (one process: the embedded default).
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Destinations (webhooks out). Private, loopback and link-local targets are refused unless allowed (local dev).
ALLOW_PRIVATE_WEBHOOK_URLS = env_bool("ALLOW_PRIVATE_WEBHOOK_URLS", False)
# `host:port` pairs a destination may point at although they are private or loopback, and nothing else private:
# the demo's webhook receiver, which the portal itself serves at /demo/webhook-receiver/ (`make serve` passes its
# host and port). Empty in production.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", ["127.0.0.1:8000", "localhost:8000"] if DEBUG else [])
# The demo's webhook receiver (texture_portal.demo.webhooks): on with DEBUG, answers 404 otherwise.
DEMO_WEBHOOK_RECEIVER = env_bool("DEMO_WEBHOOK_RECEIVER", DEBUG)
WEBHOOK_TIMEOUT_SECONDS = float(env_str("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
WEBHOOK_RETRY_MAX_SECONDS = env_int("WEBHOOK_RETRY_MAX_SECONDS", 1800)
# A destination whose deliveries keep failing is deactivated, with the reason, after this many in a row.
WEBHOOK_DEACTIVATE_AFTER_FAILURES = env_int("WEBHOOK_DEACTIVATE_AFTER_FAILURES", 50)

# Alerts (fleet.Alert). The stuck-telemetry rule: a device of these types whose readings of the last N hours
# (at least M of them) all show the same values. E-mail goes through Django's backend: the console in the demo
# and in development (printed by runserver), SMTP when EMAIL_HOST is set; links in mails start with
# PORTAL_BASE_URL.
ALERT_STUCK_TELEMETRY_HOURS = float(env_str("ALERT_STUCK_TELEMETRY_HOURS", "6"))
ALERT_STUCK_TELEMETRY_READINGS = env_int("ALERT_STUCK_TELEMETRY_READINGS", 12)
ALERT_STUCK_TELEMETRY_DEVICE_TYPES = env_list("ALERT_STUCK_TELEMETRY_DEVICE_TYPES", ["battery", "inverter"])
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Texture Portal <alerts@texture-portal.invalid>")
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Fleet imports: files up to this size are checked and imported within the request; larger ones by a
# Celery job with a progress bar. An unconfirmed preview's file is removed after the TTL.
IMPORT_SYNC_MAX_BYTES = env_int("IMPORT_SYNC_MAX_BYTES", 512 * 1024)
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024)
IMPORT_PREVIEW_TTL_HOURS = env_int("IMPORT_PREVIEW_TTL_HOURS", 24)
IMPORT_INTERRUPTED_AFTER_HOURS = env_int("IMPORT_INTERRUPTED_AFTER_HOURS", 2)
# Rows, columns and the length of one cell of a fleet file; a cell over the limit (or holding a NUL) is a row
# error quoting its start, never stored whole. A file over the rows or columns limit is refused as a whole.
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 200_000)
IMPORT_MAX_COLUMNS = env_int("IMPORT_MAX_COLUMNS", 100)
IMPORT_CELL_MAX_LENGTH = env_int("IMPORT_CELL_MAX_LENGTH", 1000)

# What one request may make the server read (README "Limits"). A body (form or JSON) over
# DATA_UPLOAD_MAX_MEMORY_SIZE bytes, more than DATA_UPLOAD_MAX_NUMBER_FIELDS query or form fields, and a
# multipart upload over API_UPLOAD_MAX_BYTES are refused before they are read; the API also refuses JSON nested
# deeper than API_JSON_MAX_DEPTH and a query parameter longer than API_QUERY_VALUE_MAX_LENGTH characters (8,192
# holds the metrics API's 400 comma-separated ids).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 10)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # larger uploads are spooled to a temporary file
API_UPLOAD_MAX_BYTES = env_int("API_UPLOAD_MAX_BYTES", IMPORT_MAX_BYTES + 1024 * 1024)
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32)
API_QUERY_VALUE_MAX_LENGTH = env_int("API_QUERY_VALUE_MAX_LENGTH", 8192)
# the admin: a changelist's or autocomplete's search (SQLite refuses LIKE patterns of ~50,000 characters), and
# any other query value (a short 400 beyond it)
ADMIN_SEARCH_MAX_LENGTH = env_int("ADMIN_SEARCH_MAX_LENGTH", 200)
ADMIN_QUERY_VALUE_MAX_LENGTH = env_int("ADMIN_QUERY_VALUE_MAX_LENGTH", 2000)

# Periodic tasks, all in one place (run exactly one `celery beat`; the demo runs them in-process with
# `manage.py run_integration_schedule`). Each with its crontab.guru spelling.
CELERY_BEAT_SCHEDULE = {
    # "*/15 * * * *": find registered devices at their OEMs (every enabled integration); "discover now" in the
    # admin runs it too
    "integrations-discover": {"task": "integrations.tasks.discovery_run_all_task", "schedule": crontab(minute="*/15")},
    # "*/5 * * * *": telemetry of the 5-minute OEMs (Tesla, FranklinWH, Emporia, ChargePoint)
    "integrations-telemetry-5min": {
        "task": "integrations.tasks.telemetry_sync_all_task",
        "schedule": crontab(minute="*/5"),
        "kwargs": {"cadence_minutes": 5},
    },
    # "*/15 * * * *": telemetry of the 15-minute OEMs (Enphase, Smartcar's limits; SolarEdge, whose daily call
    # quota lets only some of these beats read: integrations.services.telemetry_pace)
    "integrations-telemetry-15min": {
        "task": "integrations.tasks.telemetry_sync_all_task",
        "schedule": crontab(minute="*/15"),
        "kwargs": {"cadence_minutes": 15},
    },
    # "37 * * * *": fill gaps in the last TELEMETRY_HISTORY_DAYS of each device's telemetry from its OEM's
    # history API (complete UTC days; a newly discovered device's history is read at discovery)
    "integrations-telemetry-history": {
        "task": "integrations.tasks.telemetry_history_all_task",
        "schedule": crontab(minute=37),
    },
    # "*/15 * * * *": telemetry of devices customers connected themselves (Texture Connect), with their tokens
    "integrations-connections-telemetry": {
        "task": "integrations.tasks.connections_telemetry_sync_all_task",
        "schedule": crontab(minute="*/15"),
    },
    # "*/5 * * * *": devices with no reading within cadence × grace go offline
    "integrations-offline-sweep": {"task": "integrations.tasks.offline_sweep_task", "schedule": crontab(minute="*/5")},
    # "*/5 * * * *": deliver any event a destination missed (the outbox's safety net)
    "destinations-sweep": {
        "task": "texture_portal.events.tasks.destinations_sweep_task",
        "schedule": crontab(minute="*/5"),
    },
    # every DISPATCH_TICK_SECONDS: start due events, select and command devices, confirm, restore, complete,
    # and hand due commands to workers (dispatch.engine)
    "dispatch-tick": {"task": "dispatch.tasks.dispatch_tick_task", "schedule": float(DISPATCH_TICK_SECONDS)},
    # every DISPATCH_QUEUE_SECONDS: hand due commands to workers, each OEM paced by its rate limit
    "dispatch-commands-queue": {
        "task": "dispatch.tasks.commands_queue_task",
        "schedule": float(DISPATCH_QUEUE_SECONDS),
    },
    # "*/5 * * * *": the 15-minute telemetry rollups of the last two hours (what reports and baselines read)
    "fleet-telemetry-rollups": {"task": "fleet.tasks.telemetry_rollups_task", "schedule": crontab(minute="*/5")},
    # Program Health over time: each program's enrolled, online and reporting devices, kept per local day
    "programs-health": {"task": "programs.tasks.program_health_record_task", "schedule": crontab(minute=7)},
    # "41 3 * * *": delete raw readings older than TELEMETRY_RAW_RETENTION_DAYS (their rollups stay)
    "fleet-telemetry-prune": {
        "task": "fleet.tasks.telemetry_readings_prune_task",
        "schedule": crontab(minute=41, hour=3),
    },
    # "* * * * *": alerts whose snooze ran out need attention again (and are mailed)
    "fleet-alert-snoozes": {"task": "fleet.tasks.alert_snoozes_expire_task", "schedule": crontab()},
    # "*/15 * * * *": the stuck-telemetry alert rule (readings that stopped changing; resolved when they change)
    "fleet-telemetry-stuck-alerts": {
        "task": "fleet.tasks.telemetry_stuck_alerts_task",
        "schedule": crontab(minute="*/15"),
    },
    # "17 * * * *": remove the files of abandoned import previews
    "import-jobs-sweep": {"task": "fleet.importing.tasks.import_jobs_sweep_task", "schedule": crontab(minute=17)},
    # "23 3 * * *": delete integration runs older than INTEGRATION_RUN_RETENTION_DAYS
    "integration-runs-prune": {
        "task": "integrations.tasks.integration_runs_prune_task",
        "schedule": crontab(hour=3, minute=23),
    },
    # "41 * * * *": forget the API's expired Idempotency-Keys (kept 24 hours)
    "idempotency-keys-prune": {
        "task": "texture_portal.tasks.idempotency_keys_prune_task",
        "schedule": crontab(minute=41),
    },
}

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # without a broker every task runs in the process that queued it: its "Task … succeeded" line every
        # few seconds (the command hand-off runs every DISPATCH_QUEUE_SECONDS) would drown the demo's log
        **({"celery.app.trace": {"level": "WARNING"}} if CELERY_TASK_ALWAYS_EAGER else {}),
        # eager tasks still open a (never used) producer, and kombu warns that its broker has no hostname
        **({"kombu.connection": {"level": "ERROR"}} if CELERY_TASK_ALWAYS_EAGER else {}),
    },
}
