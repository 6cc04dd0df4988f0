"""Training configuration: one validated, immutable ``TrainingConfig``. No Django import.

The YAML file (``configs/train.yaml``), the training REST endpoint and the ``train_model``
command all end in ``TrainingConfig.from_dict``, which checks every key and names the offending one
in its ``ConfigError``. ``to_dict`` produces the same nested layout back, JSON-serialisable, so the
config stored with a model version rebuilds the exact config that trained it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from features.engineering import FEATURE_NAMES, PRICE_LEVEL_FEATURES, validate_window
from models_registry.naming import DEFAULT_MODEL_NAME, model_name_problem

MODEL_TYPES: tuple[str, ...] = ("logistic_regression", "random_forest", "hist_gradient_boosting")

ESTIMATOR_CLASSES: dict[str, type[BaseEstimator]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
}

# Used when a config names a model type without params, and when a command-line override switches
# the model type (the file's params belong to the file's model type).
DEFAULT_MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "random_forest": {"n_estimators": 200, "max_depth": 6, "min_samples_leaf": 20},
    # Early stopping would carve a shuffled validation set out of the training rows, mixing time;
    # a fixed number of small, regularised trees is the honest default for daily returns.
    "hist_gradient_boosting": {
        "max_iter": 200,
        "learning_rate": 0.05,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "l2_regularization": 1.0,
        "early_stopping": False,
    },
}

# Parameters the trainer sets itself; a config that set them would silently lose.
RESERVED_PARAMS: dict[str, str] = {
    "random_state": "the top-level 'seed' sets it",
    "n_jobs": "training runs single-threaded so workers do not oversubscribe the CPUs",
}

# Marks a parameter value that does not survive a JSON round trip.
_NOT_JSON = object()

DEFAULT_WINDOW = 20
DEFAULT_HORIZON = 1
DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_SEED = 42
MIN_HORIZON = 1
MAX_HORIZON = 60
MAX_VALIDATION_FRACTION = 0.5
MAX_SEED = 2**32 - 1

TOP_LEVEL_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "symbols",
        "start",
        "end",
        "window",
        "features",
        "horizon",
        "model",
        "validation",
        "seed",
    }
)
REQUIRED_KEYS: tuple[str, ...] = ("symbols", "features", "model")
MODEL_KEYS: frozenset[str] = frozenset({"type", "params"})
VALIDATION_KEYS: frozenset[str] = frozenset({"fraction"})


class ConfigError(ValueError):
    """A training configuration that cannot be used; ``key`` names the offending entry.

    ``key`` is a dotted path (``model.params.C``) or None when the problem is the whole document
    (unreadable file, not a mapping). ``source`` names the file when the config came from one.
    """

    def __init__(self, key: str | None, message: str, *, source: str | None = None) -> None:
        self.key = key
        self.message = message
        self.source = source
        text = f"{key}: {message}" if key else message
        super().__init__(f"{source}: {text}" if source else text)

    def with_source(self, source: str) -> ConfigError:
        """The same error, attributed to the file it came from."""
        return ConfigError(self.key, self.message, source=source)


def estimator_class(model_type: str) -> type[BaseEstimator]:
    """The scikit-learn classifier class behind a model type name."""
    try:
        return ESTIMATOR_CLASSES[model_type]
    except KeyError:
        raise ConfigError(
            "model.type",
            f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}",
        ) from None


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `window: true` is a mistake, not 1.
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _int_in_range(key: str, value: object, low: int, high: int) -> int:
    if not _is_int(value):
        raise ConfigError(key, f"must be an integer between {low} and {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise ConfigError(key, f"must be between {low} and {high}, got {value}")
    return int(value)


def _reject_unknown(prefix: str, data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in data:
        if key not in allowed:
            name = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(name, f"unknown key; allowed keys are {', '.join(sorted(allowed))}")


def _parse_symbols(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError("symbols", f"must be a non-empty list of symbols, got {value!r}")
    symbols: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError("symbols", f"every symbol must be a non-empty string, got {item!r}")
        symbol = item.strip().upper()
        if symbol in symbols:
            raise ConfigError("symbols", f"{symbol!r} is listed twice")
        symbols.append(symbol)
    return tuple(symbols)


def _parse_date(key: str, value: object) -> datetime.date | None:
    if value is None:
        return None
    # datetime is a date subclass; a time of day in a daily training window is a typo.
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(key, f"must be a date like 2018-12-31 (or null), got {value!r}")


def _parse_features(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError("features", f"must be a non-empty list of feature names, got {value!r}")
    features: list[str] = []
    for name in value:
        if not isinstance(name, str) or name not in FEATURE_NAMES:
            raise ConfigError(
                "features",
                f"unknown feature {name!r}; choose from {', '.join(FEATURE_NAMES)}",
            )
        if name in PRICE_LEVEL_FEATURES:
            raise ConfigError(
                "features",
                f"{name!r} is a price level: not a model input unless normalised "
                "(use ma_gap, momentum or returns instead)",
            )
        if name in features:
            raise ConfigError("features", f"{name!r} is listed twice")
        features.append(name)
    return tuple(features)


def _parse_fraction(value: object) -> float:
    key = "validation.fraction"
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise ConfigError(key, f"must be a number in (0, {MAX_VALIDATION_FRACTION}], got {value!r}")
    fraction = float(value)
    if not (math.isfinite(fraction) and 0.0 < fraction <= MAX_VALIDATION_FRACTION):
        raise ConfigError(key, f"must be in (0, {MAX_VALIDATION_FRACTION}], got {value}")
    return fraction


def _validate_estimator(key: str, cls: type[BaseEstimator], params: dict[str, Any]) -> None:
    try:
        estimator = cls(**params)
        # scikit-learn checks types and ranges only at fit; _validate_params (>= 1.2) checks them
        # now, so a bad value fails the config instead of a training run an hour later.
        validate = getattr(estimator, "_validate_params", None)
        if validate is not None:
            validate()
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"invalid value for {cls.__name__}: {exc}") from None


def validate_model_params(model_type: str, params: object) -> dict[str, Any]:
    """Check ``params`` against the estimator of ``model_type``; return a plain copy."""
    cls = estimator_class(model_type)
    if not isinstance(params, Mapping):
        raise ConfigError("model.params", f"must be a mapping of parameters, got {params!r}")
    valid = cls().get_params(deep=False)
    checked: dict[str, Any] = {}
    for name, value in params.items():
        key = f"model.params.{name}"
        if name in RESERVED_PARAMS:
            raise ConfigError(key, f"cannot be set here: {RESERVED_PARAMS[name]}")
        if name not in valid:
            allowed = ", ".join(sorted(set(valid) - set(RESERVED_PARAMS)))
            raise ConfigError(key, f"not a parameter of {cls.__name__}; valid: {allowed}")
        # The config is stored as JSON with its model version: it must come back unchanged.
        try:
            round_tripped = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            round_tripped = _NOT_JSON
        if round_tripped != value or type(round_tripped) is not type(value):
            raise ConfigError(
                key, f"must be a plain JSON value (number, string, bool, null, list), got {value!r}"
            )
        _validate_estimator(key, cls, {name: value})
        checked[name] = value
    # Each value is valid alone; some combinations are only checked together.
    _validate_estimator("model.params", cls, checked)
    return checked


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a trained model, except the candles themselves.

    Build it with ``from_dict`` (or ``load_training_config``), which validates every field; the
    constructor trusts its arguments.
    """

    symbols: tuple[str, ...]
    start: datetime.date | None
    end: datetime.date | None
    window: int
    features: tuple[str, ...]
    horizon: int
    model_type: str
    # A dict is unhashable; leaving it out of the hash keeps configs usable as cache keys.
    model_params: dict[str, Any] = dataclasses.field(hash=False)
    validation_fraction: float
    seed: int
    # The registered model the version belongs to (created on first use).
    name: str = DEFAULT_MODEL_NAME

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Validate the nested layout of ``configs/train.yaml`` and build a config.

        ``start``, ``end`` (null: no bound), ``window``, ``horizon``, ``validation`` and ``seed``
        fall back to the documented defaults; ``model.params`` absent means the model type's
        ``DEFAULT_MODEL_PARAMS``, while an explicit ``{}`` means scikit-learn's own defaults.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(None, f"the config must be a mapping, got {type(data).__name__}")
        _reject_unknown("", data, TOP_LEVEL_KEYS)
        for key in REQUIRED_KEYS:
            if key not in data:
                raise ConfigError(key, "is required")

        symbols = _parse_symbols(data["symbols"])
        start = _parse_date("start", data.get("start"))
        end = _parse_date("end", data.get("end"))
        if start is not None and end is not None and start >= end:
            raise ConfigError("start", f"must be before end ({start} is not before {end})")
        window_value = data.get("window", DEFAULT_WINDOW)
        try:
            window = validate_window(window_value)
        except ValueError as exc:
            raise ConfigError("window", str(exc)) from None
        features = _parse_features(data["features"])
        horizon = _int_in_range(
            "horizon", data.get("horizon", DEFAULT_HORIZON), MIN_HORIZON, MAX_HORIZON
        )

        model = data["model"]
        if not isinstance(model, Mapping):
            raise ConfigError("model", f"must be a mapping with 'type' and 'params', got {model!r}")
        _reject_unknown("model", model, MODEL_KEYS)
        if "type" not in model:
            raise ConfigError("model.type", f"is required; choose one of {', '.join(MODEL_TYPES)}")
        model_type = model["type"]
        if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
            raise ConfigError(
                "model.type",
                f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}",
            )
        raw_params = model.get("params")
        if raw_params is None:
            raw_params = DEFAULT_MODEL_PARAMS[model_type]
        model_params = validate_model_params(model_type, raw_params)

        validation = data.get("validation", {})
        if not isinstance(validation, Mapping):
            raise ConfigError(
                "validation", f"must be a mapping like {{fraction: 0.2}}, got {validation!r}"
            )
        _reject_unknown("validation", validation, VALIDATION_KEYS)
        fraction = _parse_fraction(validation.get("fraction", DEFAULT_VALIDATION_FRACTION))
        seed = _int_in_range("seed", data.get("seed", DEFAULT_SEED), 0, MAX_SEED)
        name = data.get("name", DEFAULT_MODEL_NAME)
        problem = model_name_problem(name)
        if problem:
            raise ConfigError("name", problem)

        return cls(
            name=name,
            symbols=symbols,
            start=start,
            end=end,
            window=window,
            features=features,
            horizon=horizon,
            model_type=model_type,
            model_params=model_params,
            validation_fraction=fraction,
            seed=seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """The nested, JSON-serialisable layout ``from_dict`` reads back to an equal config.
        ``name`` is written only for a model other than ``default``, so a default config reads
        as it did before named models."""
        named = {"name": self.name} if self.name != DEFAULT_MODEL_NAME else {}
        return {
            **named,
            "symbols": list(self.symbols),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "window": self.window,
            "features": list(self.features),
            "horizon": self.horizon,
            "model": {"type": self.model_type, "params": json.loads(json.dumps(self.model_params))},
            "validation": {"fraction": self.validation_fraction},
            "seed": self.seed,
        }

    def with_overrides(
        self,
        *,
        symbols: Sequence[str] | None = None,
        model_type: str | None = None,
        seed: int | None = None,
        name: str | None = None,
    ) -> TrainingConfig:
        """A validated copy with some fields replaced (None keeps the current value).

        Switching to another model type replaces the params with that type's
        ``DEFAULT_MODEL_PARAMS``, since the current params belong to the current type; naming
        the current type keeps the params as they are.
        """
        data = self.to_dict()
        if symbols is not None:
            data["symbols"] = list(symbols) if not isinstance(symbols, str) else symbols
        if model_type is not None and model_type != self.model_type:
            data["model"] = {"type": model_type}
        if seed is not None:
            data["seed"] = seed
        if name is not None:
            data["name"] = name
        return TrainingConfig.from_dict(data)


def load_training_config(path: str | Path) -> TrainingConfig:
    """Read and validate a YAML training config; errors are ``ConfigError``s naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(None, f"cannot read the training config: {exc}", source=source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(None, f"invalid YAML: {exc}", source=source) from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            None, f"expected a mapping of settings, got {type(data).__name__}", source=source
        )
    try:
        return TrainingConfig.from_dict(data)
    except ConfigError as exc:
        raise exc.with_source(source) from None
