"""Production: the base settings, tightened. Refuses to start without a real SECRET_KEY."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from mlengine.settings.base import *  # noqa: F403
from mlengine.settings.base import MIDDLEWARE, STATIC_ROOT, STORAGES
from mlengine.settings.env import env_bool, env_int, env_str

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random string of at least 50 characters in production"
    )
DEBUG = False

# gunicorn has no static file handler: WhiteNoise serves the admin's and the API docs' assets
# from STATIC_ROOT (filled by `collectstatic` when the image is built). It must sit right after
# SecurityMiddleware so static responses still get the security headers but skip the rest.
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware")
MIDDLEWARE = [
    *MIDDLEWARE[: _security + 1],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[_security + 1 :],
]
# Where `collectstatic` writes (the image builds into the default, BASE_DIR / "staticfiles").
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(STATIC_ROOT)) or STATIC_ROOT)
# Hashed file names let browsers cache assets for good: a release that changes a file renames it.
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The TLS terminator (load balancer, ingress) sets X-Forwarded-Proto; requests must only reach
# gunicorn through it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Health probes (/health, /health/live, /health/ready) and metrics are scraped over plain HTTP
# inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^(api/v1/)?health(/live|/ready)?$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
