"""jobplatform settings, driven by the environment.

With no ``DATABASE_URL`` and no ``REDIS_URL`` the platform runs embedded: a SQLite file
under ``var/`` and django-q2's ORM broker. Set both to run on Postgres + Redis.
"""

import ipaddress
import os
import sys
from email.utils import parseaddr
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def _at_least_one(name: str, value: int) -> int:
    if value < 1:
        raise ImproperlyConfigured(f"{name}={value} must be at least 1.")
    return value


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# Commands that sign nothing may run without a key (e.g. a migrations check in CI).
_KEYLESS_COMMANDS = {"makemigrations", "check", "showmigrations", "sqlmigrate", "help"}
_keyless = (
    len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" and sys.argv[1] in _KEYLESS_COMMANDS
)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not _keyless:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable "
            "(required when DEBUG is off), or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "jobplatform.admin.JobPlatformAdminConfig",  # django.contrib.admin, our index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_celery_beat",
    "django_tasks",
    "queues.apps.QueuesConfig",
    "scheduling.apps.SchedulingConfig",
    "notifications.apps.NotificationsConfig",
    "devices.apps.DevicesConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobplatform.api.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the user's choice (the admin's switch, a cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jobplatform.urls"

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

WSGI_APPLICATION = "jobplatform.wsgi.application"
ASGI_APPLICATION = "jobplatform.asgi.application"

# --- Database -------------------------------------------------------------------------
# Connections stay open between jobs: with CONN_MAX_AGE=0 django-q2 reconnects to
# Postgres for every task, which alone costs about 4x throughput.
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
# Behind a transaction-mode pooler (PgBouncer pool_mode=transaction) a session does not
# outlive a transaction: no server-side cursors, no prepared statements.
DB_POOLER = os.environ.get("DB_POOLER", "").strip().lower()
if DB_POOLER not in ("", "session", "transaction"):
    raise ImproperlyConfigured(f"DB_POOLER={DB_POOLER!r}: use 'transaction' or 'session'.")
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Django's own cursors bind on the client and never prepare; the engine's hottest
    # statements (queues/prepared.py) are prepared at their 5th run on a connection.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)
if DB_POOLER == "transaction" and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # Several worker processes share the file: wait for the write lock instead of failing,
    # take it at BEGIN (no upgrade deadlocks), and let readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en")
# The console ships in English and Simplified Chinese; each app keeps its catalog in its
# own locale/ directory, the templates' and the project's in locale/ at the top.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Production security (all on by default when DEBUG is off; each can be turned off for a
# deployment that terminates TLS elsewhere and says so).
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Behind a proxy that terminates TLS: X-Forwarded-Proto tells Django the scheme.
    if env_bool("SECURE_PROXY_SSL_HEADER", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job": {"()": "jobplatform.logs.JobContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "jobplatform.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # LOG_FORMAT=json: one JSON object per line, with the running job's context.
            "formatter": "json" if os.environ.get("LOG_FORMAT") == "json" else "plain",
            "filters": ["job"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-q2 logs every doorbell message at INFO; the ledger is the record of jobs.
    "loggers": {"django-q": {"level": os.environ.get("DJANGO_Q_LOG_LEVEL", "WARNING")}},
}

# --- Email ----------------------------------------------------------------------------
# SMTP in production; console (or file, with EMAIL_FILE_PATH) in development.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
if os.environ.get("EMAIL_FILE_PATH"):
    EMAIL_FILE_PATH = os.environ["EMAIL_FILE_PATH"]
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "jobplatform@localhost")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
EMAIL_SUBJECT_PREFIX = os.environ.get("EMAIL_SUBJECT_PREFIX", "[jobplatform] ")
# "Name <a@example.com>, b@example.com": receives the daily and hourly reports.
ADMINS = [
    (name or addr, addr)
    for name, addr in (parseaddr(item) for item in env_list("ADMINS", []))
    if addr
]
# Attachments given by path must live under this directory (nothing else is readable).
EMAIL_ATTACHMENT_ROOT = Path(
    os.environ.get("EMAIL_ATTACHMENT_ROOT", BASE_DIR / "var" / "attachments")
)
# Exports are written here and downloaded from the admin.
EXPORT_ROOT = Path(os.environ.get("EXPORT_ROOT", BASE_DIR / "var" / "exports"))

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous API call gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "jobplatform.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobplatform.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "jobplatform API",
    "DESCRIPTION": "Queues, jobs, the task gateway (long-poll, webhooks), schedules, workers "
    "and stats.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and its docs page are public; every operation in it needs a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "queues.models.JobStatus",
        "ScheduleStatusEnum": "scheduling.models.ScheduleStatus",
        "AttemptOutcomeEnum": "queues.models.AttemptOutcome",
        "DeviceStatusEnum": "devices.models.DeviceStatus",
        "DeviceOperationStatusEnum": "devices.models.OperationStatus",
        "DeviceOperationKindEnum": "devices.models.OperationKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobplatform.api.document_wait_endpoint",
    ],
}
# Seconds an API process remembers a token's user (a revoked token works at most this long).
TOKEN_CACHE_SECONDS = float(os.environ.get("TOKEN_CACHE_SECONDS", "10"))
# Request bodies above this many bytes get 413 on /api/ (default 256 KiB).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 256 * 1024)
# Webhooks are signed with HMAC-SHA256 of the body under this secret.
WEBHOOK_SECRET = os.environ.get("WEBHOOK_SECRET", "") or SECRET_KEY
# Webhooks go only to public addresses: loopback, private, link-local, multicast and
# reserved ones are refused unless one of these comma-separated CIDRs allows them
# (e.g. "10.20.0.0/16" for a receiver inside the network). Empty by default.
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS", [])
for _network in WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"WEBHOOK_ALLOWED_NETWORKS has {_network!r}, which is not a network: use "
            "comma-separated CIDRs such as 10.20.0.0/16,fd00::/8."
        ) from None

# The Tasks API (django.tasks): any app's @task runs on the platform's workers.
TASKS = {
    "default": {
        "BACKEND": "queues.tasks_backend.PlatformTaskBackend",
        # Tasks queue names allowed; [] allows every queue of the platform.
        "QUEUES": env_list("TASKS_QUEUES", []),
    }
}

# /metrics answers a staff login, or "Authorization: Bearer <METRICS_TOKEN>" when set.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Redis and django-q2 --------------------------------------------------------------
# Redis only rings the doorbell; every job lives in the database. Without REDIS_URL the
# platform uses django-q2's ORM broker (the embedded default).
REDIS_URL = os.environ.get("REDIS_URL", "") or None

Q_CLUSTER = {
    "name": "jobplatform",
    "workers": env_int("WORKERS", 2),
    # The platform's runner keeps its own per-job timeouts and results in the ledger:
    # django-q2 saves nothing, and its own timeout (which kills the worker process) is
    # only a last-resort guard; retry must exceed it or django-q2 warns.
    "timeout": 24 * 3600,
    "retry": 24 * 3600 + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "scheduler": False,
    "catch_up": False,
    "recycle": 1000,
    "poll": 0.1,
    "guard_cycle": 0.5,
    "daemonize_workers": True,
}
if REDIS_URL and REDIS_URL.split("://", 1)[0].endswith("+sentinel"):
    # django-q2 cannot open a Sentinel URL; its broker then uses the platform's client.
    Q_CLUSTER["broker_class"] = "queues.broker.PlatformRedisBroker"
elif REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

JOBPLATFORM = {
    # Seconds between maintenance ticks (delayed promotion) in runscheduler.
    "SCHEDULER_TICK": float(os.environ.get("SCHEDULER_TICK", "0.25")),
    # Seconds between re-issued wake-ups for queues with runnable jobs.
    "REWAKE_INTERVAL": float(os.environ.get("REWAKE_INTERVAL", "2")),
    # Longest a single drain keeps a django-q2 worker before handing over.
    "DRAIN_BUDGET": float(os.environ.get("DRAIN_BUDGET", "10")),
    # Upper bound of jobs claimed in one statement. BATCH_TARGET_SECONDS is what keeps a
    # batch short; this bounds the memory of a batch of very fast jobs (500: the drain of
    # no-op jobs ran 1.3x faster than at 100, ./dev bench --only drain).
    "MAX_BATCH": env_int("MAX_BATCH", 500),
    # Modules of job handlers outside the installed apps, imported at startup
    # (comma-separated in the environment).
    "EXTRA_JOB_MODULES": [
        m.strip() for m in os.environ.get("EXTRA_JOB_MODULES", "").split(",") if m.strip()
    ],
    # Jobs of async handlers (async def) one worker process runs at once; a handler's
    # own @job(concurrency=N) bounds its jobs further.
    "ASYNC_CONCURRENCY": _at_least_one("ASYNC_CONCURRENCY", env_int("ASYNC_CONCURRENCY", 10)),
    # Seconds of expected work one claim may take (sizes batches of slow handlers down).
    "BATCH_TARGET_SECONDS": float(os.environ.get("BATCH_TARGET_SECONDS", "0.2")),
    # A worker route not refreshed for this long is considered dead.
    "WORKER_TTL": env_int("WORKER_TTL", 15),
    # On SIGTERM, seconds active jobs get to finish before their workers are killed and
    # the jobs go back to waiting.
    "SHUTDOWN_GRACE": float(os.environ.get("SHUTDOWN_GRACE", "30")),
    # Seconds a cancelled active job gets to notice ctx.is_cancelled() before it is
    # interrupted; and, after an interrupt (timeout or cancel) is ignored, before its
    # worker process is killed.
    "CANCEL_GRACE": float(os.environ.get("CANCEL_GRACE", "10")),
    "HARD_KILL_GRACE": float(os.environ.get("HARD_KILL_GRACE", "5")),
    # A cluster with runnable jobs but no activity for this long is frozen (django-q2
    # issue #23) and is restarted.
    "FREEZE_SECONDS": float(os.environ.get("FREEZE_SECONDS", "20")),
    # Seconds between sweeps for expired locks (stalled jobs).
    "STALL_CHECK_INTERVAL": float(os.environ.get("STALL_CHECK_INTERVAL", "1")),
    # Seconds between refreshes of the per-queue counts the dashboard shows.
    "SNAPSHOT_INTERVAL": float(os.environ.get("SNAPSHOT_INTERVAL", "5")),
    # Dashboard alert thresholds: more than 1000 waiting, a failure rate over 5 %, an
    # average run over 10 s, an oldest waiting job older than 60 s.
    "ALERT_WAITING": env_int("ALERT_WAITING", 1000),
    "ALERT_FAILURE_RATE": float(os.environ.get("ALERT_FAILURE_RATE", "0.05")),
    "ALERT_AVG_SECONDS": float(os.environ.get("ALERT_AVG_SECONDS", "10")),
    "ALERT_LATENCY_SECONDS": float(os.environ.get("ALERT_LATENCY_SECONDS", "60")),
    # Seconds between retention runs of runscheduler, while every queue is within bounds.
    "RETENTION_INTERVAL": float(os.environ.get("RETENTION_INTERVAL", "60")),
    # How long a worker keeps retrying to record a batch's outcomes while the database
    # is away, before leaving the jobs to stall recovery.
    "FINALIZE_RETRY_SECONDS": float(os.environ.get("FINALIZE_RETRY_SECONDS", "20")),
}
