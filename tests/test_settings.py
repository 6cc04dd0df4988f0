"""Settings validation: every bad environment value stops start-up with an error naming it.

Each case starts Django in a fresh interpreter with a controlled environment, exactly as
``manage.py``, gunicorn and Celery do, because settings are read once per process.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_DIR = ROOT / "mlengine" / "settings"

# env_int("NAME", ...), env_float(\n    "NAME", ...), and any direct os.environ / env.str read.
_READ_PATTERNS = (
    re.compile(r"\benv_[a-z_]+\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\benv\.[a-z_]+\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\bos\.(?:environ\.get|getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
    re.compile(r"\bos\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']"),
)


def settings_env_names() -> set[str]:
    """Names of the environment variables read anywhere in ``mlengine/settings/*.py``."""
    names: set[str] = set()
    for path in SETTINGS_DIR.glob("*.py"):
        source = path.read_text()
        for pattern in _READ_PATTERNS:
            names.update(pattern.findall(source))
    # The test settings' own plumbing (per-run folders), never set by a user.
    return {name for name in names if not name.startswith("MLENGINE_TEST_")}


def clean_env(**overrides: str) -> dict[str, str]:
    """The inherited environment without any variable the settings read, plus ``overrides``.

    CI exports DATABASE_URL, CACHE_URL and CELERY_BROKER_URL for its PostgreSQL run, and a
    developer's shell may export anything; stripping them makes every case start from the
    embedded defaults, the same everywhere.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in settings_env_names() and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(overrides)
    return env


def run_python(
    code: str, *, settings: str = "mlengine.settings.local", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter from the project root with a controlled environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(DJANGO_SETTINGS_MODULE=settings, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def random_secret_key() -> str:
    return secrets.token_urlsafe(48)  # 64 characters


SETUP = "import django; django.setup()"

DUMP_SETTINGS = """
import json
import django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "DATABASE_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DATABASE_NAME": str(s.DATABASES["default"]["NAME"]),
    "CONN_MAX_AGE": s.DATABASES["default"]["CONN_MAX_AGE"],
    "HEALTH_CHECK_IDLE": s.DATABASES["default"]["HEALTH_CHECK_IDLE"],
    "PREPARED_STATEMENTS": s.DATABASES["default"]["PREPARED_STATEMENTS"],
    "CACHE_BACKEND": s.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": s.CACHES["default"]["LOCATION"],
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "CELERY_TASK_ALWAYS_EAGER": s.CELERY_TASK_ALWAYS_EAGER,
    "MARKET_DATA_URL": s.MARKET_DATA_URL,
    "MARKET_DATA_TIMEOUT": s.MARKET_DATA_TIMEOUT,
    "MARKET_DATA_RETRIES": s.MARKET_DATA_RETRIES,
    "MARKET_DATA_BACKOFF": s.MARKET_DATA_BACKOFF,
    "FEATURE_WINDOW": s.FEATURE_WINDOW,
    "PROMOTION_POLICY": s.PROMOTION_POLICY,
    "LOG_LEVEL": s.LOG_LEVEL,
    "ARTIFACTS_DIR": str(s.ARTIFACTS_DIR),
    "AUDIT_LOG_FILE": str(s.AUDIT_LOG_FILE),
}))
"""


def dump_settings(**env: str) -> dict:
    result = run_python(DUMP_SETTINGS, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the reader ---------------------------------------------------------------------------------


def test_settings_env_names_finds_single_and_multi_line_reads() -> None:
    names = settings_env_names()
    # MARKET_DATA_CONNECT_TIMEOUT is read by a call split over two lines, SECURE_SSL_REDIRECT
    # only by the production module.
    expected = {"SECRET_KEY", "DATABASE_URL", "MARKET_DATA_CONNECT_TIMEOUT", "SECURE_SSL_REDIRECT"}
    assert expected <= names
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)


# --- bad values stop start-up -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MARKET_DATA_TIMEOUT", "abc"),
        ("MARKET_DATA_TIMEOUT", "inf"),
        ("MARKET_DATA_RETRIES", "-1"),
        ("FEATURE_WINDOW", "1"),
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nonsense://x"),
        ("CACHE_URL", "nonsense://x"),
        ("PROMOTION_POLICY", "sometimes"),
        ("MARKET_DATA_URL", "ftp://x"),
        ("LOG_LEVEL", "verbose"),
        ("DATABASE_CONN_HEALTH_CHECK_IDLE", "-1"),
        ("DATABASE_PREPARED_STATEMENTS", "sometimes"),
        ("THROTTLE_RATES", "predict=many"),
        ("NUM_PROXIES", "-1"),
        ("AXES_FAILURE_LIMIT", "0"),
        ("AXES_COOLOFF_MINUTES", "soon"),
    ],
)
def test_invalid_value_stops_startup_naming_the_variable(name: str, value: str) -> None:
    result = run_python(SETUP, **{name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert name in error
    assert value in error


def test_valid_values_reach_django_settings(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    artifacts = tmp_path / "artifacts"

    values = dump_settings(
        DEBUG="off",
        ALLOWED_HOSTS="api.example.com, .example.org",
        DATABASE_URL=f"sqlite:///{database}",
        DATABASE_CONN_MAX_AGE="0",
        DATABASE_CONN_HEALTH_CHECK_IDLE="2.5",
        DATABASE_PREPARED_STATEMENTS="false",
        CACHE_URL="redis://cache.internal:6379/1",
        CELERY_BROKER_URL="redis://broker.internal:6379/2",
        MARKET_DATA_URL="https://md.example.com/api/",
        MARKET_DATA_TIMEOUT="7.5",
        MARKET_DATA_RETRIES="0",
        MARKET_DATA_BACKOFF="",  # empty counts as unset: the default
        FEATURE_WINDOW="500",
        PROMOTION_POLICY="enforce",
        LOG_LEVEL="WARNING",
        ARTIFACTS_DIR=str(artifacts),
    )

    assert values == {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["api.example.com", ".example.org"],
        "DATABASE_ENGINE": "django.db.backends.sqlite3",
        "DATABASE_NAME": str(database),
        "CONN_MAX_AGE": 0,
        "HEALTH_CHECK_IDLE": 2.5,
        "PREPARED_STATEMENTS": False,
        "CACHE_BACKEND": "django.core.cache.backends.redis.RedisCache",
        "CACHE_LOCATION": "redis://cache.internal:6379/1",
        "CELERY_BROKER_URL": "redis://broker.internal:6379/2",
        "CELERY_TASK_ALWAYS_EAGER": False,
        "MARKET_DATA_URL": "https://md.example.com/api",
        "MARKET_DATA_TIMEOUT": 7.5,
        "MARKET_DATA_RETRIES": 0,
        "MARKET_DATA_BACKOFF": 0.5,
        "FEATURE_WINDOW": 500,
        "PROMOTION_POLICY": "enforce",
        "LOG_LEVEL": "WARNING",
        "ARTIFACTS_DIR": str(artifacts),
        "AUDIT_LOG_FILE": str(artifacts / "audit" / "predictions.jsonl"),
    }


def test_no_environment_means_the_embedded_mode() -> None:
    values = dump_settings()

    assert values["DEBUG"] is True  # local settings: make run
    assert values["DATABASE_ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASE_NAME"] == str(ROOT / "var" / "db.sqlite3")
    assert values["HEALTH_CHECK_IDLE"] == 1.0
    assert values["PREPARED_STATEMENTS"] is True
    assert values["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["CELERY_BROKER_URL"] is None
    assert values["CELERY_TASK_ALWAYS_EAGER"] is True
    assert values["MARKET_DATA_URL"] is None
    assert values["FEATURE_WINDOW"] == 20
    assert values["PROMOTION_POLICY"] == "warn"


def test_a_postgresql_url_selects_the_backend_with_the_idle_window() -> None:
    values = dump_settings(DATABASE_URL="postgres://app@db.internal:5432/mlengine")

    assert values["DATABASE_ENGINE"] == "mlengine.db.postgresql"
    assert values["DATABASE_NAME"] == "mlengine"


# --- production ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret_key",
    [
        pytest.param(None, id="unset"),
        pytest.param("", id="empty"),
        pytest.param(secrets.token_urlsafe(64)[:49], id="49-characters"),
        pytest.param("ab" * 40, id="two-distinct-characters"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(secret_key: str | None) -> None:
    env = {} if secret_key is None else {"SECRET_KEY": secret_key}

    result = run_python(SETUP, settings="mlengine.settings.production", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_production_accepts_a_random_secret_key_and_forces_debug_off() -> None:
    key = random_secret_key()
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECRET_KEY, s.DEBUG, s.SECURE_SSL_REDIRECT]))"
    )

    result = run_python(code, settings="mlengine.settings.production", SECRET_KEY=key, DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [key, False, True]


def test_production_serves_static_files_with_whitenoise() -> None:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.MIDDLEWARE, s.STORAGES['staticfiles']['BACKEND']]))"
    )

    result = run_python(
        code, settings="mlengine.settings.production", SECRET_KEY=random_secret_key()
    )

    assert result.returncode == 0, result.stderr
    middleware, backend = json.loads(result.stdout.strip().splitlines()[-1])
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert middleware.count("whitenoise.middleware.WhiteNoiseMiddleware") == 1
    assert backend == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def run_deploy_check(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean_env(
            DJANGO_SETTINGS_MODULE="mlengine.settings.production",
            SECRET_KEY=random_secret_key(),
            ALLOWED_HOSTS="ml.example.com",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_check_without_warnings() -> None:
    result = run_deploy_check()

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output
    assert "WARNING" not in output


def test_deploy_check_flags_a_disabled_https_redirect() -> None:
    # The check above is only meaningful if the deploy checks really run on these settings.
    result = run_deploy_check(SECURE_SSL_REDIRECT="false")

    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr
