"""Settings for Coaching Assistant.

One file, driven by environment variables. With nothing set it runs on an
embedded default (SQLite, Celery tasks executed eagerly in-process) so a fresh
clone works; DATABASE_URL and CELERY_BROKER_URL switch to real services.
Bad values are rejected loudly at start-up rather than guessed at.
"""

import datetime
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.getenv(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from exc


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "True")

SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
    # Development only: a fixed key so sessions survive a restart of `make run`.
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

SITE_NAME = os.getenv("SITE_NAME", "Coaching Assistant")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "import_export",
    "django_celery_results",
    "coaching",
    "analytics",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # NUL in the path, a query parameter or a form field: a 400, not PostgreSQL's DataError (a 500).
    "coaching.nul_bytes.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The language a user chose with the switch (User.language) beats the browser's Accept-Language.
    "coaching.language.UserLanguageMiddleware",
    # Counts authenticated /api/ requests per user per UTC day (api_calls_made).
    "coaching.middleware.ApiCallCounterMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "coaching.errors.DatabaseUnavailableMiddleware",
    # A page refused with PermissionDenied: the friendly 403 page and one warning line, no traceback.
    "coaching.forbidden.FriendlyForbiddenMiddleware",
    # Last, as django-axes asks: locks out repeated failed logins.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "coaching.urls"
WSGI_APPLICATION = "coaching.wsgi.application"
ASGI_APPLICATION = "coaching.asgi.application"  # what `make run` serves (uvicorn), for the live event streams

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "coaching.context_processors.site",
            ],
        },
    },
]

# Database: SQLite by default, anything dj-database-url understands otherwise.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if os.getenv("TEST_DATABASE_NAME"):
    # Lets two test runs share one PostgreSQL server without trampling each other.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
# The usage roll-up's upserts (run with every usage record) are kept prepared on PostgreSQL, which
# halves what they add to a write. Turn off behind a pooler that cannot hold prepared statements
# (PgBouncer in transaction mode before 1.21). Django's own queries are never prepared either way.
DB_PREPARED_ROLLUPS = envbool("DB_PREPARED_ROLLUPS", "true")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "coaching.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "analytics:usage-dashboard"
LOGOUT_REDIRECT_URL = "login"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT failures for one email from one address, locked out for a while.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=envint("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hant", "繁體中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Users are mostly in Taiwan: the product's defaults for a new profile.
DEFAULT_USER_TIME_ZONE = "Asia/Taipei"
DEFAULT_COUNTRY = "TW"
DEFAULT_CURRENCY = "TWD"

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.getenv("MEDIA_ROOT", BASE_DIR / "media"))
# A CSV download still "running" after this long was abandoned (its server process died mid-stream):
# the exports sweep marks it failed. Keep it above the longest download you expect.
EXPORT_STALE_MINUTES = envint("EXPORT_STALE_MINUTES", 15)

# The transcription pipeline's service token (Authorization: Bearer <token>) for the session API
# (coaching/pipeline_api.py). Unset: that API refuses every call. At least 32 characters.
PIPELINE_TOKEN = os.getenv("PIPELINE_TOKEN", "")
if PIPELINE_TOKEN and (len(PIPELINE_TOKEN) < 32 or PIPELINE_TOKEN != PIPELINE_TOKEN.strip()):
    raise ImproperlyConfigured("PIPELINE_TOKEN must be at least 32 characters with no surrounding spaces")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "coaching.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "coaching.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "exports": os.getenv("THROTTLE_EXPORTS", "60/hour"),
        "bulk": os.getenv("THROTTLE_BULK", "30/hour"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Coaching Assistant API",
    "DESCRIPTION": "Usage analytics, billing analytics, exports and bulk operations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from the package, not a CDN: staff may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "BulkOperationStatusEnum": "coaching.models.bulk.BulkOperation.Status",
        "BulkOperationKindEnum": "coaching.models.bulk.BulkOperation.Kind",
    },
}

# Celery: without a broker, tasks run eagerly in-process (the embedded default).
CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_DEFAULT_QUEUE = os.getenv("CELERY_TASK_DEFAULT_QUEUE", "coaching")
CELERY_TASK_ACKS_LATE = True  # a task killed mid-way is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# `celery -A coaching beat` enqueues these; a worker runs them.
CELERY_BEAT_SCHEDULE = {
    "exports-sweep": {"task": "exports.tasks.exports_sweep", "schedule": datetime.timedelta(minutes=5)},
}

# Live updates (coaching/live.py): Redis pub/sub when a Redis URL is known, else an in-process channel.
LIVE_REDIS_URL = os.getenv("LIVE_REDIS_URL", CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "")
LIVE_CHANNEL_PREFIX = os.getenv("LIVE_CHANNEL_PREFIX", "live:")
# Seconds between keep-alive comments on an open event stream (proxies close silent connections).
LIVE_KEEPALIVE_SECONDS = envint("LIVE_KEEPALIVE_SECONDS", 15)

# Bulk operations (coaching/bulk): users per chunk task (one transaction each) and the most ids one request may name.
BULK_CHUNK_SIZE = envint("BULK_CHUNK_SIZE", 1000)
BULK_MAX_USERS = envint("BULK_MAX_USERS", 100_000)

# Security: strict when DEBUG is off; each can be relaxed explicitly (e.g. behind a TLS proxy).
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(not DEBUG))
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", str(not DEBUG))
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", str(not DEBUG))
# Load balancers probe the health endpoints over plain HTTP, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if envbool("SECURE_PROXY_SSL_HEADER", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django-axes logs every failed login at WARNING; its lockouts are what matter.
        "axes": {"level": os.getenv("AXES_LOG_LEVEL", "ERROR")},
    },
}
