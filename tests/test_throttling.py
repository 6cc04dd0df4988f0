"""Throttling: per-scope rates from THROTTLE_RATES, 429 with Retry-After in the error shape,
a limit on refused tokens, admin login lockout (django-axes), drift computation only for
signed-in callers, and a throttle that lets requests through when its cache is down."""

from __future__ import annotations

import datetime
import json
import logging
from io import StringIO

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.views import APIView

from mlengine.settings.base import DEFAULT_THROTTLE_RATES
from mlengine.settings.env import env_throttle_rates
from mlengine.throttling import ANON_READ, PREDICT, SCOPES, TRAIN, WRITE, view_throttle_scope
from models_registry.models import TrainingRun
from models_registry.services.training import model_train, training_config_resolve
from monitoring.models import DriftSnapshot
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_user, make_version, staff_user, token_client
from tests.test_settings import random_secret_key, run_python

pytestmark = pytest.mark.django_db

SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def per_minute(rate: str) -> float:
    number, period = rate.split("/")
    return int(number) * 60 / SECONDS[period]


def assert_throttled(response) -> int:
    """A 429 in the one error shape with a usable Retry-After; returns the wait."""
    assert response.status_code == 429, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "throttled"
    assert "throttled" in error["message"].lower() or "too many" in error["message"].lower()
    assert set(error) == {"code", "message", "details"}
    wait = int(response["Retry-After"])
    assert wait >= 1
    return wait


# --- configuration ------------------------------------------------------------------------------


def test_production_defaults_parse_and_cap_anonymous_predict_at_600_per_minute() -> None:
    # The test settings switch throttling off; this reads what production really starts with.
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.THROTTLE_RATES, s.REST_FRAMEWORK['DEFAULT_THROTTLE_CLASSES']]))"
    )
    result = run_python(
        code, settings="mlengine.settings.production", SECRET_KEY=random_secret_key()
    )

    assert result.returncode == 0, result.stderr
    rates, classes = json.loads(result.stdout.strip().splitlines()[-1])
    assert classes == ["mlengine.throttling.ScopedThrottle"]
    assert set(rates) == set(SCOPES)
    assert all(rate is not None for rate in rates.values()), rates
    assert per_minute(rates[PREDICT]) <= 600
    assert rates == env_throttle_rates("NO_SUCH_VARIABLE", DEFAULT_THROTTLE_RATES)


def test_throttle_rates_override_named_scopes_and_keep_the_others(monkeypatch) -> None:
    monkeypatch.setenv("THROTTLE_RATES", " predict=5/second , train=2/hours,write=off")

    rates = env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES)

    assert rates[PREDICT] == "5/s"
    assert rates[TRAIN] == "2/h"
    assert rates[WRITE] is None
    assert rates[ANON_READ] == DEFAULT_THROTTLE_RATES[ANON_READ]


def test_throttle_rates_off_lifts_every_limit(monkeypatch) -> None:
    monkeypatch.setenv("THROTTLE_RATES", "OFF")

    rates = env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES)

    assert rates == dict.fromkeys(DEFAULT_THROTTLE_RATES)


@pytest.mark.parametrize(
    "value",
    ["predict=lots", "predict=0/m", "predict=5/fortnight", "predict", "bogus=1/m", "predict=٣/m"],
)
def test_a_bad_throttle_rate_is_refused_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv("THROTTLE_RATES", value)

    with pytest.raises(ImproperlyConfigured) as error:
        env_throttle_rates("THROTTLE_RATES", DEFAULT_THROTTLE_RATES)

    assert "THROTTLE_RATES" in str(error.value)
    assert value in str(error.value)


def test_a_bad_throttle_rate_stops_start_up() -> None:
    result = run_python("import django; django.setup()", THROTTLE_RATES="predict=many")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "THROTTLE_RATES" in result.stderr.strip().splitlines()[-1]


def _api_views(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None)
            if view is not None and issubclass(view, APIView):
                yield prefix + str(pattern.pattern), pattern.name, view


def test_every_api_view_has_its_scope() -> None:
    expected = {
        "predict": PREDICT,
        "predict-batch": PREDICT,
        "model-activate": WRITE,
        "model-rollback": WRITE,
        "model-train": TRAIN,
        "registry-model-activate": WRITE,
        "registry-model-rollback": WRITE,
        "registry-model-challenger": WRITE,  # POST and DELETE: writes
        # probes: a throttled probe takes a healthy instance out of service
        "health": None,
        "health-live": None,
        "health-ready": None,
    }
    seen = set()
    for route, name, view in _api_views(get_resolver().url_patterns):
        seen.add(name)
        assert view_throttle_scope(view) == expected.get(name, ANON_READ), (route, view)
        if not route.startswith("api/"):  # the schema and docs views count as anonymous reads
            assert hasattr(view, "throttle_scope"), f"{route}: {view.__name__} names no scope"
    assert set(expected) <= seen


# --- scopes at work -----------------------------------------------------------------------------


def test_anonymous_predict_is_throttled_per_client_after_its_rate(trained, settings) -> None:
    settings.THROTTLE_RATES = {PREDICT: "3/m"}
    client = Client(REMOTE_ADDR="203.0.113.7")

    statuses = [client.get("/predict", {"symbol": "SP500"}).status_code for _ in range(3)]
    refused = client.get("/predict", {"symbol": "SP500"})

    assert statuses == [200, 200, 200]
    assert assert_throttled(refused) <= 60
    # The refused request wrote no audit row.
    assert PredictionRecord.objects.count() == 3
    # Another address, and a signed-in user, have buckets of their own.
    assert Client(REMOTE_ADDR="203.0.113.8").get("/predict", {"symbol": "SP500"}).status_code == 200
    user_client = token_client("predictor")
    user_client.defaults["REMOTE_ADDR"] = "203.0.113.7"
    assert user_client.get("/predict", {"symbol": "SP500"}).status_code == 200


def test_a_forged_forwarded_for_header_does_not_open_a_new_bucket(trained, settings) -> None:
    settings.THROTTLE_RATES = {PREDICT: "1/m"}
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/predict", {"symbol": "SP500"}).status_code == 200
    forged = client.get("/predict", {"symbol": "SP500"}, HTTP_X_FORWARDED_FOR="198.51.100.1")

    assert_throttled(forged)


def test_anonymous_reads_are_throttled_and_signed_in_reads_are_not(settings) -> None:
    settings.THROTTLE_RATES = {ANON_READ: "2/m"}
    anonymous = Client()
    signed_in = token_client("reader")

    assert [anonymous.get("/models").status_code for _ in range(2)] == [200, 200]
    assert_throttled(anonymous.get("/models"))
    assert_throttled(anonymous.get("/monitoring/history"))  # one bucket for every read
    assert [signed_in.get("/models").status_code for _ in range(5)] == [200] * 5
    # A probe is never throttled.
    assert anonymous.get("/health").status_code in {200, 503}


def test_activations_are_throttled_under_the_write_scope(settings) -> None:
    settings.THROTTLE_RATES = {WRITE: "2/m"}
    version = make_version(is_active=True)
    client = token_client("activator")

    answers = [client.post(f"/models/activate/{version.label}", {}, format="json") for _ in "ab"]
    rollback = client.post("/models/rollback", {}, format="json")

    assert [answer.status_code for answer in answers] == [200, 200]
    assert_throttled(rollback)


def test_training_is_throttled_under_its_own_scope(settings) -> None:
    settings.THROTTLE_RATES = {TRAIN: "1/h", WRITE: "100/m"}
    client = token_client("trainer")
    body = {"config": SMALL_CONFIG}

    first = client.post("/models/train", body, format="json")
    second = client.post("/models/train", body, format="json")

    assert first.status_code == 202, first.content
    wait = assert_throttled(second)
    assert 60 < wait <= 3600
    assert TrainingRun.objects.count() == 1


def test_throttling_is_off_in_the_test_settings_unless_asked() -> None:
    client = Client()
    assert all(client.get("/models").status_code == 200 for _ in range(30))


# --- refused tokens -----------------------------------------------------------------------------


def test_repeated_bad_tokens_are_throttled_per_address(settings) -> None:
    settings.THROTTLE_RATES = {**DEFAULT_THROTTLE_RATES, ANON_READ: None, "auth_failures": "3/m"}
    good = Token.objects.create(user=make_user("holder"))
    guesser = APIClient(REMOTE_ADDR="198.51.100.20")
    guesser.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    refusals = [guesser.get("/models").status_code for _ in range(3)]
    blocked = guesser.get("/models")
    guesser.credentials(HTTP_AUTHORIZATION=f"Token {good.key}")
    good_from_blocked_address = guesser.get("/models")

    assert refusals == [401, 401, 401]
    assert_throttled(blocked)
    assert "failed authentications" in blocked.json()["error"]["message"]
    assert_throttled(good_from_blocked_address)
    # Elsewhere the good token works, and the blocked address may still read anonymously.
    elsewhere = APIClient(REMOTE_ADDR="198.51.100.21")
    elsewhere.credentials(HTTP_AUTHORIZATION=f"Token {good.key}")
    assert elsewhere.get("/models").status_code == 200
    assert APIClient(REMOTE_ADDR="198.51.100.20").get("/models").status_code == 200


# --- reads that compute and store ---------------------------------------------------------------


def test_anonymous_drift_read_does_not_compute_and_store(trained) -> None:
    response = Client().get("/monitoring/drift", {"version": trained.label})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert trained.label in error["message"]
    assert not DriftSnapshot.objects.exists()

    computed = token_client("drift-caller").get("/monitoring/drift", {"version": trained.label})
    assert computed.status_code == 200
    stored = Client().get("/monitoring/drift", {"version": trained.label})
    assert stored.status_code == 200
    assert stored.json()["check_id"] == computed.json()["check_id"]


def test_schema_documents_401_and_429_where_they_happen() -> None:
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    paths = json.loads(out.getvalue())["paths"]

    drift = paths["/monitoring/drift"]["get"]
    assert {"401", "429"} <= set(drift["responses"])
    assert "authenticated" in drift["description"]
    throttled = paths["/predict"]["get"]["responses"]["429"]
    assert "Retry-After" in throttled["headers"]
    assert "429" in paths["/models/train"]["post"]["responses"]
    assert "429" not in paths["/health"]["get"]["responses"]


# --- the cache is down --------------------------------------------------------------------------


def test_a_failing_cache_lets_requests_through_and_logs_once(settings, dead_cache, caplog) -> None:
    settings.THROTTLE_RATES = {ANON_READ: "1/m", "auth_failures": "1/m"}
    caplog.set_level(logging.WARNING, logger="mlengine.cache")
    client = Client()
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    reads = [client.get("/models").status_code for _ in range(4)]
    guesses = [guesser.get("/models").status_code for _ in range(3)]

    assert reads == [200] * 4
    assert guesses == [401] * 3
    warnings = [r for r in caplog.records if r.name == "mlengine.cache"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unavailable" in warnings[0].getMessage()
    assert warnings[0].exc_info is None


# --- admin login attempts -----------------------------------------------------------------------


def _admin_login(client: Client, username: str, password: str):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR="192.0.2.50",
    )


def test_admin_login_locks_out_after_the_failure_limit_until_the_cool_off(settings) -> None:
    admin = staff_user("admin-user", registry=True)
    client = Client()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _admin_login(client, admin.username, "wrong").status_code == 200  # the form again
    assert _admin_login(client, admin.username, "wrong").status_code == 429
    locked = _admin_login(client, admin.username, "pw-" + admin.username)

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not locked out.
    other = client.post(
        "/admin/login/?next=/admin/",
        {"username": admin.username, "password": "pw-" + admin.username},
        REMOTE_ADDR="192.0.2.51",
    )
    assert other.status_code == 302

    # Once the cool-off has passed (the attempts are that old), the right password works.

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - datetime.timedelta(seconds=1)
    )
    client = Client()
    assert _admin_login(client, admin.username, "pw-" + admin.username).status_code == 302
    assert int(client.session["_auth_user_id"]) == admin.pk


def test_axes_reset_lifts_a_lockout(settings) -> None:
    admin = staff_user("locked-admin", registry=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _admin_login(client, admin.username, "wrong")
    assert _admin_login(client, admin.username, "pw-" + admin.username).status_code == 429

    call_command("axes_reset", stdout=StringIO())

    assert _admin_login(client, admin.username, "pw-" + admin.username).status_code == 302
    assert User.objects.get(pk=admin.pk).last_login is not None


# --- over real HTTP -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_gunicorn_reads_throttle_rates_from_the_environment(gunicorn_factory, monkeypatch) -> None:

    model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    monkeypatch.setenv("THROTTLE_RATES", "predict=2/m")
    base = gunicorn_factory(workers=1)

    answers = [
        requests.get(f"{base}/predict", params={"symbol": "SP500"}, timeout=30) for _ in range(3)
    ]

    assert [answer.status_code for answer in answers[:2]] == [200, 200]
    refused = answers[2]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert PredictionRecord.objects.count() == 2
