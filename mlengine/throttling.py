"""API throttling: one scope per kind of request, rates from ``THROTTLE_RATES``, failing open.

Each API view names its scope in ``throttle_scope``; the defaults are in
``settings.DEFAULT_THROTTLE_RATES`` and the README:

- ``anon_read``: every anonymous read other than ``/predict``; signed-in reads are not throttled.
- ``predict``: ``/predict`` (and ``/predict/batch``): each answer writes an audit row.
- ``write``: activate and roll back.
- ``train``: ``POST /models/train``.
- ``auth_failures``: refused API tokens per address (``FailureLimitedTokenAuthentication``).

A signed-in caller counts by user id, an anonymous one by address (``client_ip``). Counters live
in the default cache (Redis in production), so every worker and host shares them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from mlengine.cache import cache_get, cache_set

ANON_READ = "anon_read"
PREDICT = "predict"
WRITE = "write"
TRAIN = "train"
AUTH_FAILURES = "auth_failures"
SCOPES = (ANON_READ, PREDICT, WRITE, TRAIN, AUTH_FAILURES)


def throttle_rate(scope: str) -> str | None:
    """The scope's rate (``600/m``), or ``None`` for no limit.

    Read from Django's settings on every call, unlike DRF's ``SimpleRateThrottle.THROTTLE_RATES``,
    which is bound when the class is defined: ``override_settings(THROTTLE_RATES=...)`` and a
    settings module's own value both really take effect.
    """
    return settings.THROTTLE_RATES.get(scope)


def client_ip(request: HttpRequest | Request) -> str:
    """The caller's address as the throttles see it: the socket's, or the one ``NUM_PROXIES``
    trusted proxies put in X-Forwarded-For. django-axes uses it too (``AXES_CLIENT_IP_CALLABLE``),
    so the admin login and the API agree on who a client is."""
    return BaseThrottle().get_ident(request) or ""


class FailOpenCache:
    """The default cache, for throttle counters only, through ``mlengine.cache``: an error reads
    as an empty history and loses the write (counted, logged once per interval). A throttle
    protects the service; it must not be the reason every request answers 500 while Redis is
    down."""

    def get(self, key: str, default: Any = None) -> Any:
        value = cache_get(key)
        return default if value is None else value

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        cache_set(key, value, timeout)


def view_throttle_scope(view: Any) -> str | None:
    """The scope a view (class or instance) is throttled under; ``None`` if it is not.

    A view without ``throttle_scope`` counts as an anonymous read, so a new endpoint is never
    unthrottled by omission; a view opts out with ``throttle_scope = None`` (health probes)."""
    if ScopedThrottle not in getattr(view, "throttle_classes", ()):
        return None
    return getattr(view, "throttle_scope", ANON_READ)


class ScopedThrottle(SimpleRateThrottle):
    """DRF's ``ScopedRateThrottle`` with the rate read per request and a fail-open cache."""

    cache = FailOpenCache()
    rate: str | None = None

    def __init__(self) -> None:
        # The scope, and so the rate, is the view's: both are set in allow_request.
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        scope = view_throttle_scope(view)
        if scope is None or (scope == ANON_READ and request.user.is_authenticated):
            return True
        self.scope = scope
        self.rate = throttle_rate(scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = request.user
        ident = user.pk if user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def wait(self) -> float | None:
        # Never "Retry-After: 0", which would invite an immediate retry that is refused again.
        wait = super().wait()
        return None if wait is None else max(1.0, wait)


class AuthFailureCounter(SimpleRateThrottle):
    """Refused credentials per address in the ``auth_failures`` window.

    Two workers may read the same history and each add one failure, so a burst can go a few
    failures past the limit; the limit is there to end unlimited guessing, not to be exact.
    """

    scope = AUTH_FAILURES
    cache = FailOpenCache()

    def __init__(self) -> None:
        self.rate = throttle_rate(AUTH_FAILURES)
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_cache_key(self, request: Request, view: Any = None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _load(self, request: Request) -> None:
        self.key = self.get_cache_key(request)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()

    def refuses(self, request: Request) -> bool:
        """Whether this address has used up its failures for now."""
        if self.rate is None:
            return False
        self._load(request)
        return len(self.history) >= self.num_requests

    def record_failure(self, request: Request) -> None:
        if self.rate is None:
            return
        self._load(request)
        self.throttle_success()

    def wait(self) -> float | None:
        wait = super().wait()
        return None if wait is None else max(1.0, wait)


class FailureLimitedTokenAuthentication(TokenAuthentication):
    """Token authentication that stops answering an address after too many refused tokens.

    DRF authenticates before any throttle runs, so a bad token always got its 401 and guessing
    was unlimited. Once an address has ``auth_failures`` refusals in the window, any request
    from it that presents a token answers 429 with ``Retry-After``, whether the token is good
    or not (as a locked-out login refuses the right password). Requests without a token are
    not affected: they are anonymous and throttled as such.
    """

    def authenticate(self, request: Request) -> Any:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        counter = AuthFailureCounter()
        if counter.refuses(request):
            raise Throttled(
                wait=counter.wait(),
                detail="Too many failed authentications from this address.",
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            counter.record_failure(request)
            raise
