"""TrainingConfig: the default file loads, every bad key is named, the dict layout round-trips."""

from __future__ import annotations

import copy
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from models_registry.training.config import (
    DEFAULT_MODEL_PARAMS,
    ConfigError,
    TrainingConfig,
    load_training_config,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "train.yaml"


@pytest.fixture
def raw() -> dict[str, Any]:
    """The default YAML document as a plain dict, to break one key at a time."""
    return yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def test_default_config_file_loads_with_the_documented_values():
    config = load_training_config(DEFAULT_CONFIG)

    assert config.symbols == ("SP500", "NASDAQ")
    # All the history the source has: nothing pinned to the bundled data's dates.
    assert config.start is None and config.end is None
    assert config.window == 20
    assert config.features == (
        "simple_return",
        "log_return",
        "ma_gap",
        "rolling_volatility",
        "momentum",
        "range_pct",
        "volume_ratio",
    )
    assert config.horizon == 1
    assert config.model_type == "logistic_regression"
    assert config.model_params == {"C": 1.0, "max_iter": 1000}
    assert config.validation_method == "walk_forward"
    assert config.validation_folds == 5
    assert config.calibration_method is None
    assert config.seed == 42


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


@pytest.mark.parametrize(
    ("dotted", "value", "key", "phrase"),
    [
        ("colour", "blue", "colour", "unknown key"),
        ("model.type", "svm", "model.type", "unknown model type 'svm'"),
        ("model.params", {"gamma": 0.1}, "model.params.gamma", "not a parameter"),
        ("model.params", {"C": -1}, "model.params.C", "range"),
        ("model.params", {"max_iter": "lots"}, "model.params.max_iter", "max_iter"),
        ("model.params", {"random_state": 1}, "model.params.random_state", "seed"),
        ("model.params", {"C": [1, 2]}, "model.params.C", "C"),
        ("model.colour", "red", "model.colour", "unknown key"),
        ("window", 1, "window", "between 2 and 500"),
        ("window", True, "window", "integer"),
        ("features", ["simple_return", "close"], "features", "not a model input"),
        ("features", ["moving_average"], "features", "not a model input"),
        ("features", ["momentum", "momentum"], "features", "listed twice"),
        ("features", ["sentiment"], "features", "unknown feature"),
        ("features", [], "features", "non-empty"),
        ("horizon", 0, "horizon", "between 1 and 60"),
        ("horizon", 61, "horizon", "between 1 and 60"),
        ("validation", {"fraction": 0.9}, "validation.fraction", "(0, 0.5]"),
        ("validation", {"method": "holdout", "fraction": 0}, "validation.fraction", "(0, 0.5]"),
        ("validation", {"method": "holdout", "folds": 5}, "validation.folds", "walk_forward"),
        ("validation", {"fraction": 0.2, "folds": 3}, "validation.folds", "walk_forward"),
        ("validation.fraction", 0.2, "validation.fraction", "belongs to method holdout"),
        ("validation.folds", 1, "validation.folds", "between 2 and 20"),
        ("validation.folds", 21, "validation.folds", "between 2 and 20"),
        ("validation.folds", True, "validation.folds", "integer"),
        ("validation.method", "kfold", "validation.method", "unknown method 'kfold'"),
        ("validation.shuffle", True, "validation.shuffle", "unknown key"),
        ("calibration", "sigmoid", "calibration", "mapping"),
        ("calibration", {"method": "platt"}, "calibration.method", "sigmoid, isotonic"),
        ("calibration", {"fraction": 0.2}, "calibration.method", "sigmoid, isotonic"),
        ("calibration", {"method": "isotonic", "fraction": 0.05}, "calibration.fraction", "0.1"),
        ("calibration", {"method": "sigmoid", "fraction": "x"}, "calibration.fraction", "number"),
        ("calibration", {"method": "sigmoid", "bins": 3}, "calibration.bins", "unknown key"),
        ("end", "31/12/2018", "end", "date like"),
        ("start", "2018-12-31T25:00:00Z", "start", "UTC datetime"),
        ("start", "0001-01-01", "start", "within the years"),
        ("end", "9999-12-31T00:00:00+01:00", "end", "within the years"),
        ("end", 20181231, "end", "date like"),
        ("seed", -1, "seed", "between 0"),
        ("seed", 2**32, "seed", "between 0"),
        ("symbols", [], "symbols", "non-empty"),
        ("symbols", ["SP500", " "], "symbols", "non-empty string"),
        ("symbols", ["sp500", "SP500"], "symbols", "listed twice"),
    ],
)
def test_bad_value_is_rejected_naming_its_key(raw, dotted, value, key, phrase):
    _set(raw, dotted, value)

    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_dict(raw)

    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")
    assert phrase in str(caught.value)


@pytest.mark.parametrize("key", ["symbols", "features", "model"])
def test_required_key_missing_is_named(raw, key):
    del raw[key]

    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_dict(raw)

    assert caught.value.key == key


def test_to_dict_round_trips_through_json(raw):
    config = TrainingConfig.from_dict(raw)

    data = json.loads(json.dumps(config.to_dict()))

    assert data == raw
    assert TrainingConfig.from_dict(data) == config


def test_round_trip_keeps_open_dates_and_other_model_types(raw):
    raw["start"] = None
    del raw["end"]
    raw["model"] = {"type": "hist_gradient_boosting", "params": {"max_iter": 50}}
    config = TrainingConfig.from_dict(raw)

    assert config.start is None and config.end is None
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_symbols_are_stripped_and_upper_cased(raw):
    raw["symbols"] = [" sp500", "Nasdaq "]

    assert TrainingConfig.from_dict(raw).symbols == ("SP500", "NASDAQ")


def test_missing_params_take_the_type_defaults_and_empty_params_take_sklearns(raw):
    raw["model"] = {"type": "random_forest"}
    assert TrainingConfig.from_dict(raw).model_params == DEFAULT_MODEL_PARAMS["random_forest"]

    raw["model"] = {"type": "random_forest", "params": {}}
    assert TrainingConfig.from_dict(raw).model_params == {}


def test_every_default_model_params_set_is_valid(raw):
    for model_type, params in DEFAULT_MODEL_PARAMS.items():
        raw["model"] = {"type": model_type, "params": copy.deepcopy(params)}
        assert TrainingConfig.from_dict(raw).model_params == params


def test_model_type_override_resets_params_to_that_types_defaults():
    config = load_training_config(DEFAULT_CONFIG)

    switched = config.with_overrides(model_type="random_forest", seed=7, symbols=["sp500"])

    assert switched.model_type == "random_forest"
    assert switched.model_params == DEFAULT_MODEL_PARAMS["random_forest"]
    assert switched.seed == 7
    assert switched.symbols == ("SP500",)
    assert switched.window == config.window and switched.features == config.features


def test_override_with_the_same_model_type_keeps_the_files_params(raw):
    raw["model"]["params"] = {"C": 0.25, "max_iter": 500}
    config = TrainingConfig.from_dict(raw)

    assert config.with_overrides(model_type="logistic_regression").model_params == {
        "C": 0.25,
        "max_iter": 500,
    }


@pytest.mark.parametrize(
    ("overrides", "key"),
    [({"seed": -5}, "seed"), ({"model_type": "svm"}, "model.type"), ({"symbols": []}, "symbols")],
)
def test_overrides_are_validated(overrides, key):
    config = load_training_config(DEFAULT_CONFIG)

    with pytest.raises(ConfigError) as caught:
        config.with_overrides(**overrides)

    assert caught.value.key == key


def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("symbols: [SP500\nwindow: 20\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_training_config(path)

    assert str(path) in str(caught.value)
    assert "invalid YAML" in str(caught.value)


def test_missing_file_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_training_config(path)

    assert str(path) in str(caught.value)


def test_a_yaml_list_is_not_a_config(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- SP500\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="expected a mapping"):
        load_training_config(path)


def test_bad_key_in_a_file_names_both_file_and_key(tmp_path, raw):
    raw["horizon"] = 0
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_training_config(path)

    assert caught.value.key == "horizon"
    assert str(caught.value).startswith(f"{path}: horizon: ")


def test_training_core_imports_no_django():
    # A fresh interpreter: the test process itself has Django loaded by pytest-django.
    code = (
        "import sys\n"
        "import models_registry.training.config, models_registry.training.dataset\n"
        "import models_registry.training.trainer, models_registry.training.baseline\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime.date(2019, 1, 1), datetime.date(2018, 12, 31)),
        ("2018-12-31", "2018-12-31"),
        ("2018-12-31T10:00:00Z", "2018-12-31T10:00:00Z"),
        ("2018-12-31T10:00:00Z", "2018-12-31T11:00:00+02:00"),  # 09:00 UTC
    ],
)
def test_start_must_be_before_end(raw, start, end):
    raw["start"], raw["end"] = start, end

    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_dict(raw)

    assert caught.value.key == "start"
    assert "before end" in str(caught.value)


def test_bounds_are_dates_or_utc_datetimes_and_round_trip(raw):
    raw["start"] = "2020-01-01T09:30:00+02:00"
    raw["end"] = "2020-03-01"
    config = TrainingConfig.from_dict(raw)

    assert config.start == datetime.datetime(2020, 1, 1, 7, 30, tzinfo=datetime.UTC)
    assert config.end == datetime.date(2020, 3, 1)
    assert config.range_start() == config.start
    # A date end covers its whole UTC day.
    assert config.range_end() == datetime.datetime(
        2020, 3, 1, 23, 59, 59, 999999, tzinfo=datetime.UTC
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert (data["start"], data["end"]) == ("2020-01-01T07:30:00Z", "2020-03-01")
    assert TrainingConfig.from_dict(data) == config


def test_a_datetime_without_an_offset_is_utc(raw):
    raw["start"] = "2020-01-01 09:30"
    raw["end"] = datetime.datetime(2020, 2, 1, 12, 0)  # YAML's reading of 2020-02-01 12:00

    config = TrainingConfig.from_dict(raw)

    assert config.range_start() == datetime.datetime(2020, 1, 1, 9, 30, tzinfo=datetime.UTC)
    assert config.range_end() == datetime.datetime(2020, 2, 1, 12, 0, tzinfo=datetime.UTC)


def test_start_and_end_overrides_are_validated_against_the_other_bound(raw):
    raw["end"] = "2015-12-31"
    config = TrainingConfig.from_dict(raw)

    assert config.with_overrides(start="2010-01-01").start == datetime.date(2010, 1, 1)
    assert config.with_overrides(end="2016-06-30T12:00:00Z").end == datetime.datetime(
        2016, 6, 30, 12, tzinfo=datetime.UTC
    )
    with pytest.raises(ConfigError) as caught:
        config.with_overrides(start="2016-01-01")
    assert caught.value.key == "start" and "before end" in str(caught.value)


def test_old_fraction_only_validation_means_holdout(raw):
    raw["validation"] = {"fraction": 0.25}
    config = TrainingConfig.from_dict(raw)
    assert (config.validation_method, config.validation_fraction) == ("holdout", 0.25)
    assert config.to_dict()["validation"] == {"method": "holdout", "fraction": 0.25}
    assert TrainingConfig.from_dict(config.to_dict()) == config


def test_validation_defaults_to_walk_forward_and_calibration_round_trips(raw):
    del raw["validation"]
    raw["calibration"] = {"method": "isotonic"}
    config = TrainingConfig.from_dict(raw)
    assert (config.validation_method, config.validation_folds) == ("walk_forward", 5)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["calibration"] == {"method": "isotonic", "fraction": 0.2}
    assert TrainingConfig.from_dict(data) == config
