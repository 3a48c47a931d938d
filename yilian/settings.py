"""Settings for Yilian, driven only by environment variables (see docs/operations.md).

Nothing here reads the database or the network; the only file it may write is the
generated development secret key in the data directory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DATA_DIR = Path(os.environ.get("YILIAN_DATA_DIR", "var")).resolve()
DEBUG = _env_bool("YILIAN_DEBUG")


def _secret_key() -> str:
    """Return YILIAN_SECRET_KEY; in development (debug on, or the embedded SQLite database)
    a key generated once and kept in the data directory. A production installation on
    PostgreSQL must set the variable: several web servers need the same key."""
    from_env = os.environ.get("YILIAN_SECRET_KEY")
    if from_env:
        return from_env
    if not DEBUG and os.environ.get("YILIAN_DATABASE_URL"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "Set YILIAN_SECRET_KEY (a long random string, the same on every server); see docs/operations.md."
        )
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("YILIAN_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("YILIAN_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "yilian.core",
    "yilian.registry",
    "yilian.patients",
    "yilian.referrals",
    "yilian.notifications",
    "yilian.surveys",
    "yilian.dispatch",
    "yilian.consults",
    "yilian.capability",
    "yilian.activity",
    "yilian.catalogues",
    "yilian.indicators",
    "yilian.web",
    "yilian.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "yilian.core.middleware.UserLanguageMiddleware",
    "yilian.core.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "yilian.urls"
ASGI_APPLICATION = "yilian.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "yilian.web.context_processors.navigation",
            ],
        },
    },
]

# Database: SQLite file in the data directory unless YILIAN_DATABASE_URL says otherwise.
_default_sqlite = f"sqlite:///{DATA_DIR / 'yilian.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("YILIAN_DATABASE_URL", _default_sqlite), conn_max_age=0, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock at BEGIN, so read-then-write sequences
    # (the audit chain, row "locks") serialise instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "registry.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "yilian.core.passwords.CharacterClassValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:login"

# Idle timeout: the session expires after this many seconds without a request.
SESSION_COOKIE_AGE = int(os.environ.get("YILIAN_SESSION_IDLE_SECONDS", "1800"))

# The address people reach this installation at: links in webhooks, SMS and referral-slip QR codes.
SITE_URL = os.environ.get("YILIAN_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# Satisfaction surveys: how long a survey link stays valid unless the questionnaire says otherwise,
# the poster ceilings (scans per device cookie, and per network address, within the window; an address
# ceiling is generous because a whole hospital's guest Wi-Fi may share one), and the SMS sender.
YILIAN_SURVEY_VALID_DAYS = int(os.environ.get("YILIAN_SURVEY_VALID_DAYS", "14"))
YILIAN_POSTER_WINDOW_MINUTES = int(os.environ.get("YILIAN_POSTER_WINDOW_MINUTES", "60"))
YILIAN_POSTER_PER_DEVICE = int(os.environ.get("YILIAN_POSTER_PER_DEVICE", "3"))
YILIAN_POSTER_PER_ADDRESS = int(os.environ.get("YILIAN_POSTER_PER_ADDRESS", "60"))
YILIAN_SMS_BACKEND = os.environ.get("YILIAN_SMS_BACKEND", "yilian.surveys.sms.LoggingSmsBackend")

# Expert stationing: hosts farther than this (straight line) from the sending institution take a
# travel day before and after each run of on-site days; a check-in that must be on site is accepted
# within this radius of the host's coordinates; the roster optimiser's time limit in seconds.
YILIAN_TRAVEL_DAY_KM = float(os.environ.get("YILIAN_TRAVEL_DAY_KM", "300"))
YILIAN_CHECKIN_RADIUS_M = int(os.environ.get("YILIAN_CHECKIN_RADIUS_M", "1000"))
YILIAN_ROSTER_TIME_LIMIT = float(os.environ.get("YILIAN_ROSTER_TIME_LIMIT", "20"))
# Live pages: "inprocess" (one server process) or "postgres" (LISTEN/NOTIFY, several processes).
EVENTS_BACKEND = os.environ.get("YILIAN_EVENTS_BACKEND", "inprocess")
if EVENTS_BACKEND not in ("inprocess", "postgres"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("YILIAN_EVENTS_BACKEND must be inprocess or postgres")

SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = _env_bool("YILIAN_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Login lockout (django-axes): after this many failures the username is locked for a while.
AXES_FAILURE_LIMIT = int(os.environ.get("YILIAN_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("YILIAN_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
# Lock by username only: a whole hospital often reaches us through one NAT address, and
# locking that address would lock out every colleague of the person who mistyped.
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "yilian.web.views.lockout_response"
AXES_VERBOSE = False

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves static files straight from the apps (WHITENOISE_USE_FINDERS), so no
# collectstatic step is needed; set YILIAN_STATIC_ROOT to collect them for a web server.
if os.environ.get("YILIAN_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["YILIAN_STATIC_ROOT"])
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("YILIAN_LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Labels used in <title> and the navigation bar.
SITE_NAME = _("Yilian")

# Clinical activity and indicators (docs/indicators.md).
# Parquet facts, one directory per import batch, and the rejects of partial imports.
ACTIVITY_DIR = Path(os.environ.get("YILIAN_ACTIVITY_DIR", str(DATA_DIR / "activity"))).resolve()
# The key of the patient pseudonyms (HMAC-SHA256). It must never be stored with the data: set it
# from a secret store in production. Without it, it is derived from SECRET_KEY (development, demo,
# tests); changing either makes new pseudonyms that do not link to the old ones.
PSEUDONYM_KEY = os.environ.get("YILIAN_PSEUDONYM_KEY", "")
# Where the indicator engine runs: "duckdb" (embedded, default) or "pyspark" (needs the spark extra
# and Java 17; YILIAN_SPARK_MASTER picks the cluster, local[2] by default).
INDICATOR_BACKEND = os.environ.get("YILIAN_INDICATOR_BACKEND", "duckdb")
if INDICATOR_BACKEND not in ("duckdb", "pyspark"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("YILIAN_INDICATOR_BACKEND must be duckdb or pyspark")
SPARK_MASTER = os.environ.get("YILIAN_SPARK_MASTER", "local[2]")
# The largest activity file accepted by the upload page and the API (the command line has no limit).
ACTIVITY_MAX_UPLOAD_BYTES = int(os.environ.get("YILIAN_ACTIVITY_MAX_UPLOAD_MB", "512")) * 1024 * 1024
