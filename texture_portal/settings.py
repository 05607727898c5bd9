"""Texture Portal settings, read from the environment.

Embedded defaults (no variables set): SQLite under var/, Celery tasks run eagerly in-process, OEM adapters
point at the project's own OEM simulator. Production sets DATABASE_URL (PostgreSQL), CELERY_BROKER_URL
(Redis), SECRET_KEY, FIELD_ENCRYPTION_KEYS, ALLOWED_HOSTS and DEBUG=0; see README.md.
"""

from pathlib import Path

import dj_database_url

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
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "import_export",
    "texture_portal",
    "integrations",
    "fleet",
    "programs",
    "dispatch",
]

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
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# No task runs longer than this; redelivery after a lost worker waits at most this long.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TIMEZONE = "UTC"

# OEM clouds: each adapter's base URL. The default points every OEM at the project's own simulator.
OEM_SIMULATOR_URL = env_str("OEM_SIMULATOR_URL", "http://127.0.0.1:8100").rstrip("/")
OEM_SLUGS = ("tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar")
OEM_BASE_URLS = {slug: env_str(f"OEM_{slug.upper()}_BASE_URL", f"{OEM_SIMULATOR_URL}/{slug}") for slug in OEM_SLUGS}
OEM_HTTP_TIMEOUT_SECONDS = float(env_str("OEM_HTTP_TIMEOUT_SECONDS", "10"))
# Calls per second (sustained, burst) per OEM across all workers: a token bucket in Redis when one is
# configured, in process memory otherwise. Set to what each OEM grants the portal's app or plan.
OEM_RATE_LIMITS = {
    slug: (
        float(env_str(f"OEM_{slug.upper()}_RATE_PER_SECOND", "50")),
        float(env_str(f"OEM_{slug.upper()}_BURST", "100")),
    )
    for slug in OEM_SLUGS
}
OEM_RATE_LIMIT_REDIS_URL = env_str("OEM_RATE_LIMIT_REDIS_URL") or env_str("CELERY_BROKER_URL")
# A device is offline after cadence × this factor without a reading (one missed sync is not an outage).
OEM_OFFLINE_GRACE_FACTOR = float(env_str("OEM_OFFLINE_GRACE_FACTOR", "3"))
# Concurrent OEM calls inside one telemetry sync job (threads sharing one pooled session).
OEM_SYNC_CONCURRENCY = env_int("OEM_SYNC_CONCURRENCY", 8)
# Devices per telemetry sync task: a large account is split into tasks that finish well inside the cadence.
OEM_SYNC_BATCH_SIZE = env_int("OEM_SYNC_BATCH_SIZE", 2000)

CELERY_BEAT_SCHEDULE = {
    # Find registered devices at their OEMs (every enabled integration); "discover now" in the admin runs it too.
    "integrations-discover": {"task": "integrations.tasks.discovery_run_all_task", "schedule": 15 * 60},
    # Telemetry of the 5-minute OEMs (Tesla, FranklinWH, Emporia, ChargePoint).
    "integrations-telemetry-5min": {
        "task": "integrations.tasks.telemetry_sync_all_task",
        "schedule": 5 * 60,
        "kwargs": {"cadence_minutes": 5},
    },
    # Telemetry of the 15-minute OEMs (Enphase, SolarEdge's daily call quota, Smartcar's vehicle rate limits).
    "integrations-telemetry-15min": {
        "task": "integrations.tasks.telemetry_sync_all_task",
        "schedule": 15 * 60,
        "kwargs": {"cadence_minutes": 15},
    },
    # Devices with no reading within cadence × grace go offline.
    "fleet-offline-sweep": {"task": "fleet.tasks.devices_mark_stale_offline_task", "schedule": 5 * 60},
}

REST_FRAMEWORK = {
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
