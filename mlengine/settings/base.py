"""Settings shared by every environment. Every value comes from the environment.

``local`` (make run), ``test`` (pytest) and ``production`` (gunicorn, docker compose) import this
module and only adjust it. Each variable is listed in ``.env.example`` and in the README.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from mlengine.settings.env import (
    env_bool,
    env_cache,
    env_db,
    env_float,
    env_int,
    env_list,
    env_str,
    env_throttle_rates,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

# --- Django core -------------------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY", "insecure-local-development-key-change-me-0123456789abcdef")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "features",
    "models_registry",
    "predictions",
    "monitoring",
]

MIDDLEWARE = [
    "mlengine.middleware.RequestIDMiddleware",
    "monitoring.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's, building the message storage only when a page uses it (mlengine.middleware).
    "mlengine.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused admin login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlengine.urls"
# A CSRF refusal in the API's error shape; Django's page only on the admin and the dashboard.
CSRF_FAILURE_VIEW = "mlengine.api.csrf_failure"
WSGI_APPLICATION = "mlengine.wsgi.application"
APPEND_SLASH = False

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

# --- Database and cache ------------------------------------------------------------------------
DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0))
# A persistent connection that has sat idle is checked (SELECT 1) before its first use in a
# request, so a restarted database or a proxy's idle timeout costs no failed request. One used
# less than DATABASE_CONN_HEALTH_CHECK_IDLE seconds ago is not: under steady traffic the check
# would be one more round trip on every request (see mlengine/db/postgresql/base.py).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", True)
DATABASES["default"]["HEALTH_CHECK_IDLE"] = env_float(
    "DATABASE_CONN_HEALTH_CHECK_IDLE", 1.0, minimum=0.0
)
# PostgreSQL: the per-prediction audit INSERT runs as a prepared statement; false for a
# transaction-pooling proxy that cannot keep prepared statements (PgBouncer before 1.21).
DATABASES["default"]["PREPARED_STATEMENTS"] = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, reading HEALTH_CHECK_IDLE and PREPARED_STATEMENTS.
    DATABASES["default"]["ENGINE"] = "mlengine.db.postgresql"
SILENCED_SYSTEM_CHECKS: list[str] = []
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The covering index for live latencies carries INCLUDE columns; SQLite builds it without
    # them, which changes speed, not results, so its warning on every command is silenced.
    SILENCED_SYSTEM_CHECKS.append("models.W040")
    # WAL lets readers proceed while one writer commits; the timeout makes concurrent
    # writers wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env_cache("CACHE_URL", "locmemcache://mlengine")}
# A cache error is a miss (mlengine.cache). The socket timeouts bound what a dead or
# black-holed Redis costs a request; after an error the cache is skipped for the back-off, so
# an outage costs one failed attempt per process per back-off period, not one per request.
CACHE_CONNECT_TIMEOUT = env_float("CACHE_CONNECT_TIMEOUT", 0.25, minimum=0.001, maximum=60)
CACHE_TIMEOUT = env_float("CACHE_TIMEOUT", 0.5, minimum=0.001, maximum=60)
CACHE_ERROR_BACKOFF = env_float("CACHE_ERROR_BACKOFF", 5.0, minimum=0, maximum=3600)
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": CACHE_CONNECT_TIMEOUT, "socket_timeout": CACHE_TIMEOUT}
    )

# --- Time, language, static files --------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Artifacts (model files, audit log) --------------------------------------------------------
ARTIFACTS_DIR = Path(
    env_str("ARTIFACTS_DIR", str(BASE_DIR / "artifacts")) or BASE_DIR / "artifacts"
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ARTIFACTS_DIR)},
    },
}

# --- Throttling and login attempts -------------------------------------------------------------
# Requests per client and scope: a signed-in user counts by id, an anonymous caller by address.
# Which endpoint uses which scope: mlengine/throttling.py. THROTTLE_RATES overrides any of them.
DEFAULT_THROTTLE_RATES: dict[str, str | None] = {
    "anon_read": "1200/m",  # anonymous GETs other than /predict
    "predict": "600/m",  # /predict (and /predict/batch): each answer writes an audit row
    "write": "30/m",  # activate, roll back
    "train": "20/h",  # POST /models/train: each run is minutes of a worker
    "auth_failures": "20/m",  # refused API tokens per address, then 429 even for a good one
}
THROTTLE_RATES = env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES)
# Reverse proxies in front of gunicorn that append the caller to X-Forwarded-For. 0 trusts only
# the socket's address: a client can then not pick its own throttle bucket with a forged header.
NUM_PROXIES = env_int("NUM_PROXIES", 0, minimum=0, maximum=10)

# Admin password guesses: django-axes counts failed logins per address in the database (shared
# by every worker) and refuses that address, even with the right password, for the cool-off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "mlengine.throttling.client_ip"  # the same address the API throttles
AXES_RESET_ON_SUCCESS = True

# --- REST framework and OpenAPI ----------------------------------------------------------------
API_READ_REQUIRES_AUTH = env_bool("API_READ_REQUIRES_AUTH", False)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mlengine.throttling.FailureLimitedTokenAuthentication",
        # DRF's, without a session lookup for a request with no session cookie (mlengine.api).
        "mlengine.api.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mlengine.api.ReadOpenOrAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # A body is a JSON object or a 400 invalid_body (mlengine.api.JSONObjectParser).
    "DEFAULT_PARSER_CLASSES": ["mlengine.api.JSONObjectParser"],
    # DRF's, without parsing an Accept header that leaves nothing to choose (mlengine.api).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "mlengine.api.ContentNegotiation",
    "EXCEPTION_HANDLER": "mlengine.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "mlengine.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "mlengine.api.DefaultPagination",
    "PAGE_SIZE": 20,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Rates are read from THROTTLE_RATES on each request, not from DEFAULT_THROTTLE_RATES.
    "DEFAULT_THROTTLE_CLASSES": ["mlengine.throttling.ScopedThrottle"],
    "NUM_PROXIES": NUM_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ML Engine Platform API",
    "DESCRIPTION": (
        "Market data in, deterministic features out, versioned scikit-learn models, audited "
        "real-time predictions and monitoring. Every endpoint also answers under /api/v1/. "
        "Errors always have the shape "
        '{"error": {"code": "...", "message": "...", "details": {...}}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: the docs work on machines without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["mlengine.schema.only_seed_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mlengine.schema.document_throttled_responses",
        "mlengine.schema.document_framework_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ModelVersionStatus": "models_registry.models.ModelVersion.Status",
        "TrainingRunStatus": "models_registry.models.TrainingRun.Status",
    },
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# With no broker the platform runs embedded: tasks execute eagerly, in the calling process.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
# A search's chord collects its fold tasks' results here (only those tasks keep a result);
# by default the broker's Redis (another broker has no default: set it). Eager needs none.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or (
    CELERY_BROKER_URL if (CELERY_BROKER_URL or "").startswith(("redis://", "rediss://")) else None
)
CELERY_RESULT_EXPIRES = 24 * 60 * 60
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60, minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing (POST /models/train) with the broker down must fail within seconds, as a 503
# broker_unavailable, not hang the request: a short connect timeout, a read timeout for a
# broker that accepts connections and never answers (without it a publish waits forever), and
# one quick retry. The read timeout stays above the workers' 1 s BRPOP poll.
CELERY_BROKER_CONNECT_TIMEOUT = env_float(
    "CELERY_BROKER_CONNECT_TIMEOUT", 1.0, minimum=0.001, maximum=60
)
CELERY_BROKER_TIMEOUT = env_float("CELERY_BROKER_TIMEOUT", 2.0, minimum=1.5, maximum=300)
CELERY_BROKER_CONNECTION_TIMEOUT = CELERY_BROKER_CONNECT_TIMEOUT
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": CELERY_BROKER_CONNECT_TIMEOUT,
    "socket_timeout": CELERY_BROKER_TIMEOUT,
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Market data -------------------------------------------------------------------------------
MARKET_DATA_URL = env_url("MARKET_DATA_URL")
MARKET_DATA_TIMEOUT = env_float("MARKET_DATA_TIMEOUT", 5.0, minimum=0.001, maximum=300)
MARKET_DATA_CONNECT_TIMEOUT = env_float(
    "MARKET_DATA_CONNECT_TIMEOUT", 2.0, minimum=0.001, maximum=60
)
MARKET_DATA_RETRIES = env_int("MARKET_DATA_RETRIES", 3, minimum=0, maximum=20)
MARKET_DATA_BACKOFF = env_float("MARKET_DATA_BACKOFF", 0.5, minimum=0, maximum=60)
MARKET_DATA_CACHE_TTL = env_int("MARKET_DATA_CACHE_TTL", 60, minimum=0)
MARKET_DATA_FETCH_LIMIT = env_int("MARKET_DATA_FETCH_LIMIT", 1000, minimum=2, maximum=100_000)
# Training reads an upstream history page by page (MARKET_DATA_FETCH_LIMIT candles a page) and
# keeps at most this many of the newest candles per symbol: a bound on memory and upstream load.
MARKET_DATA_MAX_CANDLES = env_int("MARKET_DATA_MAX_CANDLES", 500_000, minimum=2, maximum=10_000_000)

# --- Features, models, monitoring --------------------------------------------------------------
FEATURE_WINDOW = env_int("FEATURE_WINDOW", 20, minimum=2, maximum=500)
DRIFT_THRESHOLD = env_float("DRIFT_THRESHOLD", 0.2, minimum=0)
AUDIT_LOG_LIMIT = env_int("AUDIT_LOG_LIMIT", 100, minimum=1, maximum=10_000)
# A challenger's comparison with its champion reads at most this many of its newest pairs: a
# bound on the time and memory of every /comparison call and promotion as shadow rows pile up.
COMPARISON_MAX_PAIRS = env_int("COMPARISON_MAX_PAIRS", 100_000, minimum=10, maximum=10_000_000)
# Most symbols one POST /predict/batch scores (each writes an audit row, all in one transaction).
PREDICT_BATCH_LIMIT = env_int("PREDICT_BATCH_LIMIT", 500, minimum=1, maximum=10_000)
AUDIT_LOG_FILE = env_str("AUDIT_LOG_FILE", str(ARTIFACTS_DIR / "audit" / "predictions.jsonl"))
# After an active artifact fails to load (missing, altered), a web process retries the load
# at most once per this many seconds instead of reading and hashing it on every request;
# /health/ready retries at once. 0 retries on every request.
MODEL_RELOAD_RETRY_SECONDS = env_float("MODEL_RELOAD_RETRY_SECONDS", 5.0, minimum=0, maximum=3600)
# Most models (champions and challengers of the named models) a web process keeps loaded; the
# oldest loaded goes first. Each model's last served champion is kept besides, for its fallback.
MODEL_CACHE_SIZE = env_int("MODEL_CACHE_SIZE", 16, minimum=1, maximum=1000)
# The JSONL export of committed rows (predictions.audit.export), run by beat every 30 s.
# A gap in the ids is waited for this many seconds before rows after it are exported: an
# insert that took the missing id may still commit (see the exporter's docstring).
AUDIT_EXPORT_LAG = env_float("AUDIT_EXPORT_LAG", 5.0, minimum=0, maximum=3600)
AUDIT_EXPORT_BATCH = env_int("AUDIT_EXPORT_BATCH", 1000, minimum=1, maximum=100_000)
# /monitoring/freshness calls the export stale when its oldest unexported row is older.
AUDIT_EXPORT_MAX_LAG = env_int("AUDIT_EXPORT_MAX_LAG", 300, minimum=1)
# Delete predictions older than this many days, once exported and sealed (0: keep forever).
PREDICTION_RETENTION_DAYS = env_int("PREDICTION_RETENTION_DAYS", 0, minimum=0, maximum=100_000)
PREDICTION_RETENTION_BATCH = env_int("PREDICTION_RETENTION_BATCH", 1000, minimum=1, maximum=100_000)
PROMOTION_POLICY = env_str("PROMOTION_POLICY", "warn", choices=("warn", "enforce"))
DRIFT_WINDOW = env_int("DRIFT_WINDOW", 500, minimum=10, maximum=100_000)
# A year: the bundled daily candles give ~500 distinct (symbol, candle) rows in that time.
DRIFT_MAX_AGE = env_int("DRIFT_MAX_AGE", 365 * 24 * 3600, minimum=60)
DRIFT_MIN_SAMPLES = env_int("DRIFT_MIN_SAMPLES", 100, minimum=1)
DRIFT_SHARE = env_float("DRIFT_SHARE", 0.5, minimum=0.01, maximum=1.0)
MAX_MODEL_AGE = env_int("MAX_MODEL_AGE", 30 * 24 * 3600, minimum=60)
MAX_PREDICTION_GAP = env_int("MAX_PREDICTION_GAP", 3600, minimum=1)
FRESHNESS_INTERVALS = env_float("FRESHNESS_INTERVALS", 4.0, minimum=1.0, maximum=1000)

# --- Metrics -----------------------------------------------------------------------------------
# prometheus_client's multiprocess mode: every gunicorn worker writes its counters to files in
# this folder and /metrics adds them up, so the figures are right with any number of processes.
# It must be in the environment before prometheus_client is first imported.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
Path(str(PROMETHEUS_MULTIPROC_DIR)).mkdir(parents=True, exist_ok=True)

# --- Logging -----------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
# Expected failures (database, cache, upstream down) log one line per kind per this many
# seconds per process, with the count held back (mlengine.logs); 0 logs every one.
LOG_RATE_LIMIT_SECONDS = env_float("LOG_RATE_LIMIT_SECONDS", 10.0, minimum=0, maximum=3600)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Django logs every 5xx response as an ERROR line: identical ones are rate-limited.
    "filters": {"rate_limit": {"()": "mlengine.logs.RateLimitFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.request": {"level": "INFO", "filters": ["rate_limit"]},
    },
}
