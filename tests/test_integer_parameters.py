"""Integers in URLs are ASCII digits within a documented range, everywhere; durations are bounded.

int() and str.isdigit take other scripts' digits ("٣" is 3, "²" passes isdigit and then breaks
int()), so each of these once answered another resource or a 500.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from models_registry.models import TrainingRun
from tests.factories import make_version, token_client

pytestmark = pytest.mark.django_db

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _assert_400(response, code: str = "invalid_parameter") -> dict:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == code
    return error


def test_a_training_run_id_in_another_script_is_not_that_run() -> None:
    run = TrainingRun.objects.create(source="api")
    client = Client()
    assert client.get(f"/training-runs/{run.pk}").status_code == 200

    for raw in (str(run.pk).translate(ARABIC_INDIC), f"+{run.pk}", f"{run.pk}%0A", "0", "-1"):
        _assert_400(client.get(f"/training-runs/{raw}"))
    # Beyond the largest key a run can have: refused, not an overflow on SQLite.
    _assert_400(client.get("/training-runs/99999999999999999999"))


def test_a_version_in_another_script_or_with_a_newline_is_malformed() -> None:
    make_version()
    client = Client()
    assert client.get("/models/v1").status_code == 200
    for raw in ("٣", "v\u0661", "v1%0A", "%20v1", "v0"):
        _assert_400(client.get(f"/models/{raw}"))
        _assert_400(client.get(f"/model/{raw}"))
    _assert_400(client.get("/monitoring/latency", {"version": "v\u0661"}))


@pytest.mark.parametrize(
    "window", ["²", "٣", "٣m", "800000d", "10000d", " 15m", "15m ", "1000001", "", "1.5h"]
)
def test_a_bad_latency_window_is_a_400(window: str) -> None:
    error = _assert_400(Client().get("/monitoring/latency", {"window": window}))
    assert "9999" in error["message"]


@pytest.mark.parametrize(
    ("window", "described"),
    [("9999d", "last 863913600 s"), ("15M", "last 900 s"), ("1000000", "last 1000000 predictions")],
)
def test_the_largest_windows_are_answered(window: str, described: str) -> None:
    response = Client().get("/monitoring/latency", {"window": window})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["window"] == described


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/features", {"symbol": "SP500", "lookback": "٢٠"}),
        ("/features", {"symbol": "SP500", "rows": "³"}),
        ("/features", {"symbol": "SP500", "lookback": ""}),
        ("/predictions/recent", {"limit": "٣"}),
        ("/predictions/recent", {"limit": "+3"}),
        ("/monitoring/history", {"limit": "٣"}),
        ("/models", {"page": "\u0661"}),
        ("/models", {"page": "0"}),
        ("/models", {"page_size": "٣"}),
        ("/models", {"page_size": "1000"}),
        ("/models/activations", {"page_size": "0"}),
    ],
)
def test_query_integers_take_ascii_digits_within_their_range(path: str, params: dict) -> None:
    make_version()
    _assert_400(Client().get(path, params))


def test_a_symbol_in_fullwidth_letters_is_malformed() -> None:
    _assert_400(Client().get("/features", {"symbol": "\uff33\uff30500"}))
    _assert_400(Client().get("/features", {"symbol": " SP500"}))


@pytest.mark.parametrize(
    "body",
    [
        {"seed": "7"},
        {"seed": "٣"},
        {"seed": 7.0},
        {"activate": "yes"},
        {"symbols": [500]},
        {"model": "no-such-model"},
    ],
)
def test_a_training_body_takes_the_json_types_it_documents(body: dict) -> None:
    client: APIClient = token_client("int-trainer")
    _assert_400(client.post("/models/train", body, format="json"))
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("body", [{"force": "true"}, {"reason": 42}])
def test_an_activation_body_takes_the_json_types_it_documents(body: dict) -> None:
    make_version()
    client: APIClient = token_client("int-activator")
    _assert_400(client.post("/models/activate/v1", body, format="json"))
    assert client.post("/models/activate/v1", {"force": True}, format="json").status_code == 200


def test_a_request_id_is_a_canonical_ascii_uuid() -> None:
    client = Client()
    canonical = "5a801341-6492-4cf5-a4d9-030052454008"
    assert client.get(f"/predictions/{canonical}").status_code == 404  # well-formed, unknown
    for raw in (
        canonical.replace("-", ""),
        "{" + canonical + "}",
        "urn:uuid:" + canonical,
        canonical.translate(ARABIC_INDIC),
    ):
        _assert_400(client.get(f"/predictions/{raw}"))
