"""Named models (issue 12): each model with its symbols, its window, its champion and its
challengers; the routing of /predict; the registry routes; names refused everywhere."""

from __future__ import annotations

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from features.sources import feature_row_of, get_candle_source
from models_registry.errors import ChallengerRefused
from models_registry.models import ActivationEvent, ModelVersion, RegisteredModel
from models_registry.naming import model_name_problem
from models_registry.selectors import challengers_of, champion_of
from models_registry.services.activation import (
    challenger_add,
    challenger_remove,
    model_version_activate,
)
from models_registry.training.config import ConfigError, TrainingConfig
from predictions.inference import (
    model_cache,
    model_route,
    route_cache,
    routing_generation,
    serving_routes,
)
from tests.factories import SMALL_CONFIG, make_model, make_user, make_version, token_client

pytestmark = pytest.mark.django_db

SPEC = {"horizon": 1, "features": SMALL_CONFIG["features"]}


@pytest.fixture
def two_models() -> dict[str, ModelVersion]:
    """``spx`` serves SP500 with a 10-candle window, ``ndx`` NASDAQ with 30; each has a champion;
    ``default`` has one too (it lists nothing)."""
    spx = make_model("spx", symbols=["SP500"])
    ndx = make_model("ndx", symbols=["NASDAQ"])
    champions = {
        "spx": make_version(model=spx, feature_spec={**SPEC, "window": 10}),
        "ndx": make_version(model=ndx, feature_spec={**SPEC, "window": 30}),
        "default": make_version(feature_spec={**SPEC, "window": 20}),
    }
    for name, version in champions.items():
        model_version_activate(version=version.version, model=name, actor_name="test")
    return champions


def _features(symbol: str, window: int) -> dict[str, float]:
    candles = get_candle_source().get_candles(symbol)
    return feature_row_of(symbol, candles, window).features


# Names


@pytest.mark.parametrize("name", ["v3", "v12", "A", "Ab", "a", "1ab", "a_b", "a" * 64, "", "ab\n"])
def test_bad_names_are_refused_by_every_entry_point(name: str) -> None:
    assert model_name_problem(name)
    with pytest.raises(ValidationError):
        RegisteredModel(name=name).full_clean()
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_dict({**SMALL_CONFIG, "name": name})
    assert caught.value.key == "name"
    response = APIClient().get("/predict", {"symbol": "SP500", "model": name})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_parameter"
    body = token_client("namer").post("/models/train", {"name": name}, format="json")
    assert body.status_code == 400
    assert not RegisteredModel.objects.filter(name=name).exists()


@pytest.mark.parametrize("name", ["ab", "fx-hourly", "v3x", "vv", "a" * 63, "default"])
def test_good_names_are_accepted(name: str) -> None:
    assert model_name_problem(name) is None
    RegisteredModel(name=name).full_clean(validate_unique=False)
    assert TrainingConfig.from_dict({**SMALL_CONFIG, "name": name}).name == name


# Versions per model, one champion per model


def test_versions_are_numbered_per_model_and_unique_within_one() -> None:
    a, b = make_model("aa"), make_model("bb")
    assert [make_version(model=a).version for _ in range(2)] == [1, 2]
    assert make_version(model=b).version == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version(model=a, version=2)


def test_one_active_version_per_model_is_a_database_constraint() -> None:
    a, b = make_model("aa"), make_model("bb")
    make_version(model=a, is_active=True)
    make_version(model=b, is_active=True)  # another model's champion: allowed
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version(model=a, is_active=True)
    assert ModelVersion.objects.filter(is_active=True).count() == 2


def test_a_challenger_is_ready_and_inactive_by_a_database_constraint() -> None:
    for fields in ({"status": "failed"}, {"is_active": True}):
        with pytest.raises(IntegrityError), transaction.atomic():
            make_version(model="aa", is_challenger=True, **fields)


def test_activating_one_model_leaves_the_other_champion(two_models) -> None:
    newer = make_version(model="spx", feature_spec={**SPEC, "window": 10})
    result = model_version_activate(version=newer.version, model="spx", actor_name="test")
    assert result.changed and result.previous_version == two_models["spx"]
    assert champion_of(model="spx") == newer
    assert champion_of(model="ndx") == two_models["ndx"]
    assert champion_of() == two_models["default"]
    event = ActivationEvent.objects.order_by("-pk").first()
    assert event.model.name == "spx" and event.from_version == two_models["spx"]


def test_seed_activation_acts_on_default_only(two_models) -> None:
    newer = make_version()
    client = token_client("operator")
    response = client.post(f"/models/activate/{newer.label}", {}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"active_version", "previous_version", "changed", "warning"}
    assert champion_of() == newer
    assert champion_of(model="spx") == two_models["spx"]
    # v1 of spx exists; /models lists default's versions only.
    listed = APIClient().get("/models").json()
    assert [item["version"] for item in listed["results"]] == ["v2", "v1"]
    rollback = client.post("/models/rollback", {}, format="json")
    assert rollback.json()["active_version"] == two_models["default"].label
    assert champion_of(model="ndx") == two_models["ndx"]


# Routing


def test_each_symbol_is_served_by_its_model_with_that_models_window(two_models) -> None:
    client = APIClient()
    for symbol, name, window in (("SP500", "spx", 10), ("nasdaq", "ndx", 30)):
        body = client.get("/predict", {"symbol": symbol}).json()
        assert body["model"] == name
        assert body["model_version"] == two_models[name].label
        expected = _features(symbol.upper(), window)
        assert body["features"]["moving_average"] == pytest.approx(expected["moving_average"])
    spx = client.get("/predict", {"symbol": "SP500"}).json()["features"]["moving_average"]
    assert spx != pytest.approx(_features("SP500", 30)["moving_average"])
    # Several models loaded in this process at once, one per (version, sha256).
    assert {m.model_name for m in model_cache.loaded()} == {"spx", "ndx"}
    record = client.get("/predictions/recent").json()["results"][0]
    assert record["model"] == "spx"  # the newest: the SP500 above


def test_model_parameter_serves_any_symbol_with_the_named_model(two_models) -> None:
    body = APIClient().get("/api/v1/predict", {"symbol": "SP500", "model": "ndx"}).json()
    assert body["model"] == "ndx" and body["model_version"] == "v1"
    expected = _features("SP500", 30)
    assert body["features"]["moving_average"] == pytest.approx(expected["moving_average"])


def test_unknown_model_is_404(two_models) -> None:
    response = APIClient().get("/predict", {"symbol": "SP500", "model": "nope"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model"
    assert response.json()["error"]["details"] == {"model": "nope"}


def test_symbol_no_model_lists_is_served_by_default(two_models) -> None:
    RegisteredModel.objects.filter(name="ndx").update(symbols=[])
    body = APIClient().get("/predict", {"symbol": "NASDAQ"}).json()
    assert body["model"] == "default" and body["model_version"] == two_models["default"].label


def test_symbol_listed_by_several_models_is_ambiguous_unless_default_is_one(two_models) -> None:
    RegisteredModel.objects.filter(name="ndx").update(symbols=["NASDAQ", "SP500"])
    response = APIClient().get("/predict", {"symbol": "sp500"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ambiguous_model"
    assert error["details"] == {"symbol": "SP500", "models": ["ndx", "spx"]}
    RegisteredModel.objects.filter(name="default").update(symbols=["SP500"])
    assert APIClient().get("/predict", {"symbol": "SP500"}).json()["model"] == "default"


def test_a_model_without_a_champion_is_503_and_never_another_models_answer() -> None:
    make_model("idle", symbols=["SP500"])
    make_version(is_active=True)
    response = APIClient().get("/predict", {"symbol": "SP500"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_active_model"
    assert response.json()["error"]["details"]["model"] == "idle"


def test_batch_routes_each_symbol_and_reports_per_symbol_errors(two_models) -> None:
    make_model("fx", symbols=["EURUSD"])
    make_model("fx-two", symbols=["EURUSD"])
    response = APIClient().post(
        "/predict/batch", {"symbols": ["NASDAQ", "EURUSD", "SP500", "XYZ"]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert [(p["symbol"], p["model"]) for p in body["predictions"]] == [
        ("NASDAQ", "ndx"),
        ("SP500", "spx"),
    ]
    assert [(e["symbol"], e["code"]) for e in body["errors"]] == [
        ("EURUSD", "ambiguous_model"),
        ("XYZ", "unknown_symbol"),
    ]
    ndx = next(p for p in body["predictions"] if p["model"] == "ndx")
    assert ndx["features"]["moving_average"] == pytest.approx(
        _features("NASDAQ", 30)["moving_average"]
    )
    named = APIClient().post(
        "/predict/batch", {"symbols": ["NASDAQ"], "model": "spx"}, format="json"
    )
    assert named.json()["predictions"][0]["model"] == "spx"
    unknown = APIClient().post(
        "/predict/batch", {"symbols": ["NASDAQ"], "model": "nope"}, format="json"
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_model"


def test_routes_are_read_once_per_change_and_checked_by_one_row_per_request(two_models) -> None:
    challenger = make_version(model="spx", feature_spec={**SPEC, "window": 10})
    challenger_add(version=challenger.version, model="spx", actor_name="test")
    with CaptureQueriesContext(connection) as queries:
        route = model_route(symbol="sp500")
    # A change since the last copy: the generation, then the routes' one join.
    assert len(queries) == 2 and "routing_generation" in queries[0]["sql"]
    assert route.name == "spx" and route.symbols == ("SP500",)
    assert route.champion.pk == two_models["spx"].pk
    assert [key.pk for key in route.challengers] == [challenger.pk]
    hits = route_cache.hits
    with CaptureQueriesContext(connection) as queries:
        assert model_route(symbol="sp500") == route
    assert len(queries) == 1 and "routing_generation" in queries[0]["sql"]
    assert route_cache.hits == hits + 1
    with CaptureQueriesContext(connection) as queries:
        routes = serving_routes()
    assert len(queries) == 1 and {"ndx", "spx"} <= set(routes)
    assert routes["ndx"].symbols == ("NASDAQ",)
    assert routes["ndx"].champion.pk == two_models["ndx"].pk


@pytest.mark.parametrize(
    "change",
    [
        "update",  # QuerySet.update(): no signal, no save()
        "symbols",  # the model's row, as the admin saves it
        "delete",
    ],
)
def test_every_write_to_models_and_versions_is_seen_by_the_next_route(two_models, change) -> None:
    """The routing generation changes by trigger with any write, however it is made, so the
    cached routes are never served after the database changed."""
    assert model_route(symbol="SP500").name == "spx"
    before = routing_generation()
    if change == "update":
        ModelVersion.objects.filter(pk=two_models["spx"].pk).update(is_active=False)
        assert model_route(symbol="SP500").champion is None
    elif change == "symbols":
        RegisteredModel.objects.filter(name="spx").update(symbols=["NASDAQ"])
        assert model_route(symbol="SP500").name == "default"
    else:
        spare = make_version(model="spx", feature_spec=SPEC)
        before = routing_generation()
        ModelVersion.objects.filter(pk=spare.pk).delete()
        assert model_route(symbol="SP500").name == "spx"
    assert routing_generation() != before


def test_a_champion_that_fails_to_load_falls_back_per_model(two_models, settings) -> None:
    settings.MODEL_RELOAD_RETRY_SECONDS = 3600
    client = APIClient()
    assert client.get("/predict", {"symbol": "SP500"}).json()["model_version"] == "v1"
    broken = make_version(model="spx", feature_spec={**SPEC, "window": 10})
    model_version_activate(version=broken.version, model="spx", actor_name="test")
    # The row altered after the activation's check: this process keeps spx's v1.
    ModelVersion.objects.filter(pk=broken.pk).update(artifact_sha256="f" * 64)
    assert client.get("/predict", {"symbol": "SP500"}).json()["model_version"] == "v1"
    assert model_cache.serving_stale
    assert client.get("/predict", {"symbol": "NASDAQ"}).json()["model"] == "ndx"


# Challengers


def test_challengers_are_added_and_removed_with_their_history(two_models) -> None:
    candidate = make_version(model="spx")
    client = token_client("operator")
    url = f"/registry/models/spx/challengers/{candidate.label}"
    added = client.post(url, {"reason": "shadow it"}, format="json")
    assert added.status_code == 200
    assert added.json() == {"model": "spx", "version": "v2", "is_challenger": True, "changed": True}
    assert client.post(url, {}, format="json").json()["changed"] is False
    assert list(challengers_of(model="spx")) == [candidate]
    assert not challengers_of(model="ndx").exists()
    detail = APIClient().get("/registry/models/spx").json()
    assert detail["champion"]["version"] == "v1"
    assert [c["version"] for c in detail["challengers"]] == ["v2"]
    assert detail["counts"]["challengers"] == 1 and detail["counts"]["versions"] == 2
    removed = client.delete(url)
    assert removed.status_code == 200 and removed.json()["is_challenger"] is False
    assert client.delete(url).json()["changed"] is False
    history = APIClient().get("/api/v1/registry/models/spx/activations").json()["results"]
    assert [(e["action"], e["to_version"], e["from_version"]) for e in history] == [
        ("challenger_remove", "v2", None),
        ("challenger_add", "v2", None),
        ("activate", "v1", None),
    ]
    assert history[1]["reason"] == "shadow it" and history[1]["model"] == "spx"
    # The seed history is default's.
    seed = APIClient().get("/models/activations").json()["results"]
    assert [e["to_version"] for e in seed] == ["v1"]


def test_challenger_refusals(two_models) -> None:
    client = token_client("operator")
    failed = make_version(model="spx", status="failed")
    cases = [
        (f"/registry/models/spx/challengers/{failed.label}", 409, "version_not_ready"),
        ("/registry/models/spx/challengers/v1", 409, "challenger_refused"),  # the champion
        ("/registry/models/ndx/challengers/v2", 404, "unknown_model_version"),  # spx's v2 only
        ("/registry/models/nope/challengers/v1", 404, "unknown_model"),
        ("/registry/models/spx/challengers/x1", 400, "invalid_parameter"),
    ]
    for url, status, code in cases:
        response = client.post(url, {}, format="json")
        assert response.status_code == status, (url, response.content)
        assert response.json()["error"]["code"] == code
    assert not ModelVersion.objects.filter(is_challenger=True).exists()
    assert not ActivationEvent.objects.exclude(action="activate").exists()
    with pytest.raises(ChallengerRefused, match="champion"):
        challenger_add(version=1, model="spx")


def test_promoting_a_challenger_makes_it_champion_only(two_models) -> None:
    candidate = make_version(model="spx")
    challenger_add(version=candidate.version, model="spx")
    model_version_activate(version=candidate.version, model="spx")
    candidate.refresh_from_db()
    assert candidate.is_active and not candidate.is_challenger
    challenger_remove(version=candidate.version, model="spx")  # no-op, no event
    assert ActivationEvent.objects.filter(action="challenger_remove").count() == 0


# Registry routes


def test_registry_routes_answer_for_each_model(two_models) -> None:
    make_version(model="ndx")
    client = APIClient()
    models = client.get("/registry/models").json()
    assert [(m["name"], m["champion"], m["symbols"]) for m in models["results"]] == [
        ("default", "v1", []),
        ("ndx", "v1", ["NASDAQ"]),
        ("spx", "v1", ["SP500"]),
    ]
    versions = client.get("/api/v1/registry/models/ndx/versions", {"page_size": 1}).json()
    assert versions["count"] == 2
    assert versions["results"][0]["version"] == "v2"
    assert versions["results"][0]["model"] == "ndx"
    detail = client.get("/registry/models/ndx/versions/1").json()
    assert (
        detail["model"] == "ndx" and detail["is_active"] and detail["feature_spec"]["window"] == 30
    )
    for url, code in (
        ("/registry/models/nope", "unknown_model"),
        ("/registry/models/nope/versions", "unknown_model"),
        ("/registry/models/nope/activations", "unknown_model"),
        ("/registry/models/ndx/versions/v9", "unknown_model_version"),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == code


def test_registry_writes_need_the_registry_permission(two_models) -> None:
    urls = [
        ("post", "/registry/models/spx/activate/v1"),
        ("post", "/registry/models/spx/rollback"),
        ("post", "/registry/models/spx/challengers/v1"),
        ("delete", "/registry/models/spx/challengers/v1"),
    ]
    stranger = APIClient()
    stranger.force_authenticate(make_user("stranger", registry=False))
    for method, url in urls:
        assert getattr(APIClient(), method)(url, {}, format="json").status_code == 401
        assert getattr(stranger, method)(url, {}, format="json").status_code == 403


def test_registry_activate_and_rollback_act_on_the_named_model(two_models) -> None:
    newer = make_version(model="ndx")
    client = token_client("operator")
    response = client.post(
        f"/registry/models/ndx/activate/{newer.label}", {"reason": "fresher"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["model"] == "ndx" and response.json()["active_version"] == "v2"
    assert champion_of(model="spx") == two_models["spx"]
    back = client.post("/api/v1/registry/models/ndx/rollback", {}, format="json")
    assert back.json() == {
        "model": "ndx",
        "active_version": "v1",
        "previous_version": "v2",
        "changed": True,
        "warning": None,
    }
    nothing = client.post("/registry/models/fresh-model/rollback", {}, format="json")
    assert nothing.status_code == 404


# Training into a named model


def test_training_creates_the_model_on_first_use_and_adds_a_challenger(tmp_path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**SMALL_CONFIG, "name": "spx-small", "symbols": ["sp500"]}))
    call_command("train_model", "--config", str(path), "--activate")
    model = RegisteredModel.objects.get(name="spx-small")
    assert model.symbols == ["SP500"] and model.config["name"] == "spx-small"
    assert champion_of(model=model).version == 1
    call_command("train_model", "--config", str(path), "--name", "spx-small", "--challenger")
    assert [v.version for v in challengers_of(model=model)] == [2]
    assert champion_of() is None  # default untouched
    assert not RegisteredModel.objects.exclude(name__in=["default", "spx-small"]).exists()


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
def test_the_training_request_names_its_model_and_adds_a_challenger(
    prefix, django_capture_on_commit_callbacks
) -> None:
    api = token_client("trainer")
    url = f"{prefix}/models/train"
    body = {"config": SMALL_CONFIG, "name": "spx-api"}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(url, {**body, "activate": True}, format="json")
    assert first.status_code == 202, first.content
    model = RegisteredModel.objects.get(name="spx-api")  # created on first use
    assert champion_of(model=model).version == 1
    with django_capture_on_commit_callbacks(execute=True):
        second = api.post(url, {**body, "challenger": True}, format="json")
    assert second.status_code == 202, second.content
    assert [v.version for v in challengers_of(model=model)] == [2]
    assert champion_of(model=model).version == 1 and champion_of() is None
    both = api.post(url, {**body, "activate": True, "challenger": True}, format="json")
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_parameter"
    assert model.versions.count() == 2
