"""Settings for videojobs, read from the environment with local defaults.

Every variable is listed in the README. A junk value stops start-up with
ImproperlyConfigured naming the variable. Loading settings writes nothing (it
only sets the process's umask, so that what it writes later is private):
DATA_DIR and the generated secret key are made by `python -m videojobs.datadir`
(part of `make run`).
"""

from __future__ import annotations

import os
from datetime import timedelta

import environ
from django.core.exceptions import ImproperlyConfigured

from videojobs.datadir import BASE_DIR, data_dir, keep_private, read_secret_key
from videojobs.env import env_bool, env_bytes, env_float, env_int, env_list, env_str

keep_private()  # every file the service writes is 0600, every folder 0700 (videojobs.datadir)
DATA_DIR = data_dir()
# Each job owns one folder, JOBS_DIR/<job id>/ (layout: jobs/storage/__init__.py).
JOBS_DIR = DATA_DIR / "jobs"
# The files of resumable uploads (tus) until they become a job's videos (jobs/storage/resumable.py).
RESUMABLE_DIR = DATA_DIR / "resumable"

# DJANGO_SECRET_KEY, or the key `python -m videojobs.datadir` generated. Left empty,
# Django refuses to start with "The SECRET_KEY setting must not be empty".
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or read_secret_key(DATA_DIR)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS=1: behind a TLS-terminating proxy that sets X-Forwarded-Proto. Secure cookies, HSTS, a redirect
# from http, and absolute URLs in the API that say https://. `manage.py check --deploy` then passes.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", True)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): the pages load scripts from this site only and have no inline
# scripts. Styles allow inline attributes because the Django admin uses a few.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "django_q",
    "axes",
    "csp",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Pages and API answers: private, no-store (Back after a logout must not show a job from the cache).
    "videojobs.nocache.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication (an anonymous upload is refused unread), before the CSRF check (which reads the body).
    "jobs.web.upload_guard.UploadGuardMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Pages need a login by default; DRF views are exempt and use IsAuthenticated.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Brute force: django-axes counts failed logins (the login page, the admin and /api/auth/token/, which all
# call authenticate() with the request) and locks out a client address or a username after too many.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one reaching the limit locks
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout ends on time, whatever is tried meanwhile
AXES_CLIENT_IP_CALLABLE = "videojobs.proxy.client_ip"  # the real client behind the TLS proxy

ROOT_URLCONF = "videojobs.urls"

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
            # The app's tags live with the rest of its web code (jobs/web/), not in jobs/templatetags/.
            "libraries": {"jobs_extras": "jobs.web.templatetags.jobs_extras"},
        },
    },
]

WSGI_APPLICATION = "videojobs.wsgi.application"


def _database() -> dict:
    url = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
    config = environ.Env.db_url_config(url)
    # A web thread keeps its connection between requests instead of opening one (and, on SQLite, running
    # the PRAGMAs below) for each: a fair part of a status poll (bench/README.md). Checked before reuse.
    config.setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
    config.setdefault("CONN_HEALTH_CHECKS", True)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE transactions + WAL + a busy timeout let the web process and
        # the workers write without "database is locked" (docs/architecture/queue-and-database.md,
        # "SQLite").
        config.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"  # filled by collectstatic (make run)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# No MEDIA_URL on purpose: job files are served only through authenticated views.

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs-list"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    # Token first: DRF takes the first class's challenge, so a request without credentials gets
    # 401 with "WWW-Authenticate: Token" (session authentication has no challenge, which makes it 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobs.web.api.errors.exception_handler",
    # Per-user (and, for anonymous requests such as the token view, per-address) rate limits.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    # Behind the TLS proxy (HTTPS=1) the anonymous rate is counted per real client, not per proxy.
    "NUM_PROXIES": 1 if HTTPS else None,
    "DEFAULT_THROTTLE_RATES": {
        "user": f"{env_int('API_REQUESTS_PER_MINUTE', 600, minimum=1)}/min",
        "anon": f"{env_int('API_ANONYMOUS_REQUESTS_PER_MINUTE', 60, minimum=1)}/min",
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "videojobs API",
    "DESCRIPTION": "Upload videos, get N variations of each, download one ZIP.",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"FormatEnum": "jobs.models.base.Format", "FitEnum": "jobs.models.base.Fit"},
}

# --- videojobs ---------------------------------------------------------------
JOB_TTL_HOURS = env_int("JOB_TTL_HOURS", 24, minimum=1)
STORAGE_CAP_BYTES = env_bytes("STORAGE_CAP_BYTES", 3 * 1024**3)
# What one team's jobs may hold (inside the cap), and one user's (inside their team's): new work evicts only
# its owner's and its team's finished results, never another team's.
TEAM_STORAGE_BYTES = env_bytes("TEAM_STORAGE_BYTES", STORAGE_CAP_BYTES)
USER_STORAGE_BYTES = env_bytes("USER_STORAGE_BYTES", STORAGE_CAP_BYTES // 3)
DISK_FULL_PERCENT = env_int("DISK_FULL_PERCENT", 85, minimum=1)
# Eviction never deletes a job that finished less than this long ago, whoever's upload asks for room.
MIN_RETENTION_MINUTES = env_int("MIN_RETENTION_MINUTES", 60, minimum=0)
MAX_ACTIVE_JOBS_PER_USER = env_int("MAX_ACTIVE_JOBS_PER_USER", 5, minimum=1)
# ZIP downloads one user may stream at once (each holds its files open while it streams).
MAX_DOWNLOADS_PER_USER = env_int("MAX_DOWNLOADS_PER_USER", 4, minimum=1)
# Uploads one user may send at once (each holds a web thread and its spooled files while it arrives).
MAX_UPLOADS_PER_USER = env_int("MAX_UPLOADS_PER_USER", 2, minimum=1)
# Event streams (GET /api/jobs/{id}/events/) one user may have open at once: each is a coroutine and a
# listener of the process's watch for as long as it is open.
MAX_STREAMS_PER_USER = env_int("MAX_STREAMS_PER_USER", 20, minimum=1)
# Threads per web process for every request but the event streams (videojobs/asgi.py): what gunicorn's
# gthread workers had (8), and a few more, since a download holds one while it streams.
WSGI_THREADS = env_int("WSGI_THREADS", 10, minimum=1)
# Resumable uploads (tus, /api/uploads/) one user may have open at once, and how long an unfinished or unused
# one is kept (the cleanup removes it after that).
MAX_OPEN_UPLOADS_PER_USER = env_int("MAX_OPEN_UPLOADS_PER_USER", 20, minimum=1)
UPLOAD_EXPIRY_HOURS = env_int("UPLOAD_EXPIRY_HOURS", 24, minimum=1)
MAX_FILES = env_int("MAX_FILES", 10, minimum=1)
MAX_UPLOAD_BYTES = env_bytes("MAX_UPLOAD_BYTES", 500 * 1024**2)
MAX_VARIATIONS = env_int("MAX_VARIATIONS", 20, minimum=1)
DEFAULT_VARIATIONS = min(5, MAX_VARIATIONS)
# Every output of a job (videos x variations x formats) counts against this.
MAX_OUTPUTS_PER_JOB = env_int("MAX_OUTPUTS_PER_JOB", 300, minimum=1)
KILL_GRACE_SECONDS = env_float("KILL_GRACE_SECONDS", 2.0)
# FFmpeg's CPU priority (nice): above 0 it yields to the web server (bench/polling.py measures the difference;
# the figures: bench/README.md, "Measured decisions").
ENCODE_NICENESS = env_int("ENCODE_NICENESS", 19, minimum=0)
# FFmpeg under Linux's SCHED_IDLE policy (chrt --idle): a woken web request takes the core from it at once,
# where nice 19 alone let an encoder finish its time slice (bench/README.md, "Measured decisions"). Where the
# policy cannot be set, only the niceness applies.
ENCODE_IDLE_SCHEDULING = env_bool("ENCODE_IDLE_SCHEDULING", True)
# The address space one FFmpeg may take, in bytes (0: no limit). Unset: sized from MAX_PIXELS and BATCH_SIZE
# (jobs.ffmpeg.encode_memory_limit).
ENCODE_MEMORY_BYTES = env_bytes("ENCODE_MEMORY_BYTES", None)
# Checked on the decoded stream of every upload (not its header), and on every frame FFmpeg decodes.
MAX_DURATION_SECONDS = env_int("MAX_DURATION_SECONDS", 600, minimum=1)
MAX_PIXELS = env_int("MAX_PIXELS", 3840 * 2160, minimum=1)
MAX_FPS = env_int("MAX_FPS", 120, minimum=1)
# The CPU one upload's inspection may take in the web process before it is refused as too complex.
PROBE_CPU_SECONDS = env_float("PROBE_CPU_SECONDS", 3.0)
BATCH_SIZE = env_int("BATCH_SIZE", 5, minimum=1)
FFMPEG_BINARY = env_str("FFMPEG_BINARY", "")
WORKERS = env_int("WORKERS", max(1, (os.cpu_count() or 2) // 2), minimum=1)
CLEANUP_MINUTES = env_int("CLEANUP_MINUTES", 5, minimum=1)
STALE_AFTER_SECONDS = env_int("STALE_AFTER_SECONDS", 120, minimum=1)
# A queued job whose task was sent longer ago than this gets it sent again by the cleanup pass
# (a broker that failed or lost it); duplicates are harmless, the claim decides.
QUEUE_RESEND_SECONDS = env_int("QUEUE_RESEND_SECONDS", 600, minimum=10)
# FFmpeg whose progress has not moved for this long is stopped and its video failed as stalled.
STALL_SECONDS = env_int("STALL_SECONDS", 120, minimum=1)
MAX_ATTEMPTS = env_int("MAX_ATTEMPTS", 3, minimum=1)
# How often one job's failed videos may be retried.
MAX_RETRIES = env_int("MAX_RETRIES", 3, minimum=0)
# The longest a single job may run before django-q2 stops it.
JOB_TIMEOUT_SECONDS = env_int("JOB_TIMEOUT_SECONDS", min(6 * 3600, JOB_TTL_HOURS * 3600 // 2), minimum=60)
if JOB_TIMEOUT_SECONDS + 600 >= JOB_TTL_HOURS * 3600:
    raise ImproperlyConfigured(
        f"JOB_TIMEOUT_SECONDS={JOB_TIMEOUT_SECONDS} must end well before a job expires "
        f"(JOB_TTL_HOURS={JOB_TTL_HOURS}): keep it under JOB_TTL_HOURS x 3600 - 600"
    )
# Email when a job ends (jobs/services/notify.py): an EMAIL_URL such as smtp://user:password@host:587 or
# smtp+tls://...; unset, no email is sent. SITE_URL is the address the links in it start with.
EMAIL_URL = env_str("EMAIL_URL", "")
if EMAIL_URL:
    vars().update(environ.Env.email_url_config(EMAIL_URL))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "videojobs <videojobs@localhost>")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
SITE_URL = env_str("SITE_URL", "http://localhost:8000")
# Webhooks (jobs/services/webhooks.py): a job's notify_url may not point at a loopback, private, link-local
# or reserved address unless this is set (an intranet); a delivery is retried for WEBHOOK_RETRY_HOURS, and its
# record kept WEBHOOK_KEEP_DAYS; each worker process looks for due deliveries every WEBHOOK_POLL_SECONDS.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_RETRY_HOURS = env_int("WEBHOOK_RETRY_HOURS", 24, minimum=1)
WEBHOOK_KEEP_DAYS = env_int("WEBHOOK_KEEP_DAYS", 7, minimum=1)
WEBHOOK_POLL_SECONDS = env_float("WEBHOOK_POLL_SECONDS", 2.0, minimum=0.1)
if WEBHOOK_KEEP_DAYS * 24 < WEBHOOK_RETRY_HOURS:
    raise ImproperlyConfigured(
        f"WEBHOOK_KEEP_DAYS={WEBHOOK_KEEP_DAYS} must keep a delivery's record at least as long as it is retried "
        f"(WEBHOOK_RETRY_HOURS={WEBHOOK_RETRY_HOURS}): a record forgotten earlier would be made and sent again"
    )
WEBHOOK_MAX_PENDING_PER_USER = env_int("WEBHOOK_MAX_PENDING_PER_USER", 100, minimum=1)
# What a job's output files are called (docs/usage.md, "File names"); the app checks it as it starts.
OUTPUT_NAME_TEMPLATE = env_str("OUTPUT_NAME_TEMPLATE", "{video}_v{variation}_{job}")
# How long the web side's health check accepts since the last worker beat.
WORKER_SEEN_SECONDS = env_int("WORKER_SEEN_SECONDS", 180, minimum=10)
MIN_FREE_BYTES = env_bytes("MIN_FREE_BYTES", 512 * 1024**2)

# Uploads bigger than this spill to a temporary file instead of memory, in a folder of our own,
# so that the files of a web process that died mid-upload are found and swept by the cleanup.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024**2
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "upload-tmp")
# Let our own check (MAX_FILES) name the problem instead of Django's generic one.
DATA_UPLOAD_MAX_NUMBER_FILES = max(100, MAX_FILES + 1)

REDIS_URL = env_str("REDIS_URL", "")
Q_CLUSTER = {
    "name": "videojobs",
    "workers": WORKERS,
    "recycle": 100,
    "timeout": JOB_TIMEOUT_SECONDS,
    # The ORM lease starts at fetch, not at start (docs/architecture/queue-and-database.md, "Queue"). With queue_limit
    # = 1 a fetched task waits for at most one running job, so a timeout and a margin cover it; and
    # it stays well below JOB_TTL_HOURS, so a lost delivery comes back while the job matters. A busy
    # cluster fetches nothing at all (broker_class below): idle clusters elsewhere take the tasks.
    "retry": JOB_TIMEOUT_SECONDS + 600,
    "queue_limit": 1,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    # How often an idle cluster asks the ORM broker for a task: a job waits about half of it before a
    # worker takes it. One indexed SELECT per poll; with Redis the broker blocks instead and this is unused.
    "poll": 0.1,
    "label": "Task queue",
    # The ORM or Redis broker, fetching only when a worker of the cluster is free (jobs.worker.gate).
    "broker_class": "jobs.worker.gate.GatedBroker",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "jobs": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django-q": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
