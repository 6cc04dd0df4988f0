"""Training configuration: one validated, immutable ``TrainingConfig``. No Django import.

The YAML file (``configs/train.yaml``), the training REST endpoint and the ``train_model``
command all end in ``TrainingConfig.from_dict``, which checks every key and names the offending one
in its ``ConfigError``. ``to_dict`` produces the same nested layout back, JSON-serialisable, so the
config stored with a model version rebuilds the exact config that trained it.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
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
MIN_BOUND_YEAR = 1800
MAX_BOUND_YEAR = 2200
VALIDATION_METHODS: tuple[str, ...] = ("walk_forward", "holdout")
DEFAULT_VALIDATION_METHOD = "walk_forward"
DEFAULT_FOLDS = 5
MIN_FOLDS = 2
MAX_FOLDS = 20
CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic")
DEFAULT_CALIBRATION_FRACTION = 0.2
MIN_CALIBRATION_FRACTION = 0.1
MAX_CALIBRATION_FRACTION = 0.5

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
        "calibration",
        "search",
        "seed",
    }
)
REQUIRED_KEYS: tuple[str, ...] = ("symbols", "features")
SEARCH_KEYS: frozenset[str] = frozenset({"candidates"})
SEARCH_CANDIDATE_KEYS: frozenset[str] = frozenset({"type", "params", "grid"})
# Expanded grid points of a whole search: each is (folds) Celery tasks and one pooled verdict.
MAX_SEARCH_CANDIDATES = 32
MODEL_KEYS: frozenset[str] = frozenset({"type", "params"})
VALIDATION_KEYS: frozenset[str] = frozenset({"method", "folds", "fraction"})
CALIBRATION_KEYS: frozenset[str] = frozenset({"method", "fraction"})


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


Bound = datetime.date | datetime.datetime


def _parse_bound(key: str, value: object) -> Bound | None:
    """A range bound: null, a date (a whole UTC day) or a datetime (that instant, in UTC).

    A datetime without an offset is taken as UTC, one with an offset is converted to UTC; YAML
    reads ``2018-12-31`` as a date and ``2018-12-31 10:00:00`` as a datetime, JSON gives strings.
    """
    if value is None:
        return None
    bound: Bound | None = None
    if isinstance(value, datetime.date):
        bound = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if "T" not in text.upper() and " " not in text:
                bound = datetime.date.fromisoformat(text)
            else:
                bound = datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
    if bound is not None:
        # Candle times are nanoseconds since 1970 (years 1678-2261); far beyond is a typo.
        if not MIN_BOUND_YEAR <= bound.year <= MAX_BOUND_YEAR:
            raise ConfigError(
                key, f"must be within the years {MIN_BOUND_YEAR}-{MAX_BOUND_YEAR}, got {value!r}"
            )
        return _utc(bound) if isinstance(bound, datetime.datetime) else bound
    raise ConfigError(
        key,
        "must be a date like 2018-12-31 or a UTC datetime like 2018-12-31T16:00:00Z "
        f"(or null), got {value!r}",
    )


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def bound_first_instant(bound: Bound) -> datetime.datetime:
    """The first instant a bound covers: a date's midnight (UTC), a datetime itself."""
    if isinstance(bound, datetime.datetime):
        return bound
    return datetime.datetime.combine(bound, datetime.time(0), tzinfo=datetime.UTC)


def bound_last_instant(bound: Bound) -> datetime.datetime:
    """The last instant (to the microsecond) a bound covers: a date's 23:59:59.999999 (UTC)."""
    if isinstance(bound, datetime.datetime):
        return bound
    return bound_first_instant(bound) + datetime.timedelta(days=1, microseconds=-1)


def bound_text(bound: Bound) -> str:
    """A bound as written in a config: ``2018-12-31`` or ``2018-12-31T16:00:00Z``."""
    if isinstance(bound, datetime.datetime):
        return bound.isoformat().replace("+00:00", "Z")
    return bound.isoformat()


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


def _parse_validation(value: object) -> tuple[str, int, float]:
    """(method, folds, fraction) of the ``validation:`` section.

    ``method`` defaults to ``walk_forward``, except that a section naming only ``fraction`` (the
    layout before walk-forward existed, and every config stored with an older version) means
    ``holdout``. ``folds`` belongs to walk-forward and ``fraction`` to the hold-out.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(
            "validation",
            f"must be a mapping like {{method: walk_forward, folds: 5}}, got {value!r}",
        )
    _reject_unknown("validation", value, VALIDATION_KEYS)
    default_method = "holdout" if "fraction" in value and "method" not in value else None
    method = value.get("method", default_method or DEFAULT_VALIDATION_METHOD)
    if method not in VALIDATION_METHODS:
        raise ConfigError(
            "validation.method",
            f"unknown method {method!r}; choose one of {', '.join(VALIDATION_METHODS)}",
        )
    if method == "walk_forward" and "fraction" in value:
        raise ConfigError("validation.fraction", "belongs to method holdout, not walk_forward")
    if method == "holdout" and "folds" in value:
        raise ConfigError("validation.folds", "belongs to method walk_forward, not holdout")
    folds = _int_in_range(
        "validation.folds", value.get("folds", DEFAULT_FOLDS), MIN_FOLDS, MAX_FOLDS
    )
    fraction = _parse_fraction(value.get("fraction", DEFAULT_VALIDATION_FRACTION))
    return str(method), folds, fraction


def _parse_calibration(value: object) -> tuple[str | None, float]:
    """(method or None, fraction) of the optional ``calibration:`` section."""
    if value is None:
        return None, DEFAULT_CALIBRATION_FRACTION
    if not isinstance(value, Mapping):
        raise ConfigError(
            "calibration", f"must be a mapping like {{method: sigmoid}} (or null), got {value!r}"
        )
    _reject_unknown("calibration", value, CALIBRATION_KEYS)
    method = value.get("method")
    if method not in CALIBRATION_METHODS:
        raise ConfigError(
            "calibration.method",
            f"must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}",
        )
    raw = value.get("fraction", DEFAULT_CALIBRATION_FRACTION)
    low, high = MIN_CALIBRATION_FRACTION, MAX_CALIBRATION_FRACTION
    if isinstance(raw, bool) or not isinstance(raw, int | float | np.floating):
        raise ConfigError(
            "calibration.fraction", f"must be a number in [{low}, {high}], got {raw!r}"
        )
    fraction = float(raw)
    if not (math.isfinite(fraction) and low <= fraction <= high):
        raise ConfigError("calibration.fraction", f"must be in [{low}, {high}], got {raw}")
    return str(method), fraction


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


def _plain_json(key: str, value: object) -> None:
    # The config is stored as JSON with its model version: it must come back unchanged.
    try:
        round_tripped = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        round_tripped = _NOT_JSON
    if round_tripped != value or type(round_tripped) is not type(value):
        raise ConfigError(
            key, f"must be a plain JSON value (number, string, bool, null, list), got {value!r}"
        )


def validate_model_params(
    model_type: str, params: object, *, key: str = "model.params"
) -> dict[str, Any]:
    """Check ``params`` against the estimator of ``model_type``; return a plain copy.

    ``key`` is the dotted path errors name (``model.params``, or a search candidate's).
    """
    cls = estimator_class(model_type)
    prefix = key
    if not isinstance(params, Mapping):
        raise ConfigError(prefix, f"must be a mapping of parameters, got {params!r}")
    valid = cls().get_params(deep=False)
    checked: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}.{name}"
        if name in RESERVED_PARAMS:
            raise ConfigError(key, f"cannot be set here: {RESERVED_PARAMS[name]}")
        if name not in valid:
            allowed = ", ".join(sorted(set(valid) - set(RESERVED_PARAMS)))
            raise ConfigError(key, f"not a parameter of {cls.__name__}; valid: {allowed}")
        _plain_json(key, value)
        _validate_estimator(key, cls, {name: value})
        checked[name] = value
    # Each value is valid alone; some combinations are only checked together.
    _validate_estimator(prefix, cls, checked)
    return checked


@dataclasses.dataclass(frozen=True)
class SearchCandidate:
    """One ``search.candidates`` entry: a model type, its fixed params and a parameter grid.

    ``grid`` maps parameter names to the values tried (in the listed order); a grid value
    replaces the same parameter in ``params``. An empty grid is one point: ``params`` alone.
    """

    model_type: str
    params: dict[str, Any] = dataclasses.field(hash=False)
    grid: dict[str, list[Any]] = dataclasses.field(hash=False)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point's full params. Grid names are taken in sorted order (a config stored
        in PostgreSQL's jsonb loses its key order), values in listed order."""
        names = sorted(self.grid)
        return [
            {**self.params, **dict(zip(names, values, strict=True))}
            for values in itertools.product(*(self.grid[name] for name in names))
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.model_type,
            "params": json.loads(json.dumps(self.params)),
            "grid": json.loads(json.dumps(self.grid)),
        }


def _parse_candidate(index: int, value: object) -> SearchCandidate:
    key = f"search.candidates[{index}]"
    if not isinstance(value, Mapping):
        raise ConfigError(
            key, f"must be a mapping like {{type: ..., grid: {{...}}}}, got {value!r}"
        )
    _reject_unknown(key, value, SEARCH_CANDIDATE_KEYS)
    model_type = value.get("type")
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise ConfigError(
            f"{key}.type",
            f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}",
        )
    raw_params = value.get("params")
    if raw_params is None:
        raw_params = DEFAULT_MODEL_PARAMS[model_type]
    params = validate_model_params(model_type, raw_params, key=f"{key}.params")
    grid = value.get("grid", {})
    if not isinstance(grid, Mapping):
        raise ConfigError(
            f"{key}.grid", f"must map parameter names to lists of values, got {grid!r}"
        )
    checked: dict[str, list[Any]] = {}
    for name, values in grid.items():
        name_key = f"{key}.grid.{name}"
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ConfigError(name_key, f"must be a non-empty list of values, got {values!r}")
        listed: list[Any] = []
        for item in values:
            # Each value alone, then (below) every combination with the fixed params.
            validate_model_params(model_type, {name: item}, key=f"{key}.grid")
            if any(item == seen and type(item) is type(seen) for seen in listed):
                raise ConfigError(name_key, f"{item!r} is listed twice")
            listed.append(item)
        checked[str(name)] = listed
    candidate = SearchCandidate(model_type=model_type, params=params, grid=checked)
    for point in candidate.points():
        validate_model_params(model_type, point, key=f"{key}.grid")
    return candidate


def _parse_search(value: object) -> tuple[SearchCandidate, ...] | None:
    """The candidates of the optional ``search:`` section (None: no search)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            "search",
            f"must be a mapping like {{candidates: [{{type: ..., grid: {{...}}}}]}}, got {value!r}",
        )
    _reject_unknown("search", value, SEARCH_KEYS)
    raw = value.get("candidates")
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise ConfigError("search.candidates", f"must be a non-empty list, got {raw!r}")
    candidates = tuple(_parse_candidate(index, item) for index, item in enumerate(raw))
    points = sum(len(candidate.points()) for candidate in candidates)
    if points > MAX_SEARCH_CANDIDATES:
        raise ConfigError(
            "search.candidates",
            f"the grids expand to {points} candidates; at most {MAX_SEARCH_CANDIDATES}",
        )
    return candidates


def _parse_model(model: object) -> tuple[str, dict[str, Any]]:
    """(type, params) of the ``model:`` section."""
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
    return model_type, validate_model_params(model_type, raw_params)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a trained model, except the candles themselves.

    Build it with ``from_dict`` (or ``load_training_config``), which validates every field; the
    constructor trusts its arguments.
    """

    symbols: tuple[str, ...]
    # Inclusive bounds in UTC; a date covers its whole day. None: from the first / up to the last
    # candle the source has.
    start: Bound | None
    end: Bound | None
    window: int
    features: tuple[str, ...]
    horizon: int
    model_type: str
    # A dict is unhashable; leaving it out of the hash keeps configs usable as cache keys.
    model_params: dict[str, Any] = dataclasses.field(hash=False)
    validation_fraction: float
    seed: int
    # "walk_forward" (K expanding folds) or "holdout" (the last validation_fraction).
    validation_method: str = DEFAULT_VALIDATION_METHOD
    validation_folds: int = DEFAULT_FOLDS
    # None: no calibration step; else "sigmoid" or "isotonic", fitted on the last
    # calibration_fraction of each symbol's training rows (models_registry.training.walk_forward).
    calibration_method: str | None = None
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION
    # The registered model the version belongs to (created on first use).
    name: str = DEFAULT_MODEL_NAME
    # None: train model_type / model_params. Else the candidates a search compares
    # (models_registry.training.search); model_type / model_params are then the first point.
    search: tuple[SearchCandidate, ...] | None = dataclasses.field(default=None, hash=False)

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
        start = _parse_bound("start", data.get("start"))
        end = _parse_bound("end", data.get("end"))
        if (
            start is not None
            and end is not None
            and bound_first_instant(start) >= bound_first_instant(end)
        ):
            raise ConfigError(
                "start",
                f"must be before end ({bound_text(start)} is not before {bound_text(end)})",
            )
        window_value = data.get("window", DEFAULT_WINDOW)
        try:
            window = validate_window(window_value)
        except ValueError as exc:
            raise ConfigError("window", str(exc)) from None
        features = _parse_features(data["features"])
        horizon = _int_in_range(
            "horizon", data.get("horizon", DEFAULT_HORIZON), MIN_HORIZON, MAX_HORIZON
        )

        search = _parse_search(data.get("search"))
        if search is not None and "model" in data:
            raise ConfigError(
                "search",
                "replaces model: give one of them (the search's winner becomes the model)",
            )
        if search is not None:
            # Until the search picks, the config's model is the first candidate's first point.
            model_type = search[0].model_type
            model_params = search[0].points()[0]
        elif "model" not in data:
            raise ConfigError("model", "is required (or a search: section)")
        else:
            model_type, model_params = _parse_model(data["model"])

        method, folds, fraction = _parse_validation(data.get("validation", {}))
        if search is not None and method != "walk_forward":
            raise ConfigError(
                "search",
                "needs validation.method walk_forward: candidates are compared out of fold",
            )
        calibration_method, calibration_fraction = _parse_calibration(data.get("calibration"))
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
            validation_method=method,
            validation_folds=folds,
            calibration_method=calibration_method,
            calibration_fraction=calibration_fraction,
            search=search,
        )

    def to_dict(self) -> dict[str, Any]:
        """The nested, JSON-serialisable layout ``from_dict`` reads back to an equal config.
        ``name`` is written only for a model other than ``default``, so a default config reads
        as it did before named models."""
        named = {"name": self.name} if self.name != DEFAULT_MODEL_NAME else {}
        return {
            **named,
            "symbols": list(self.symbols),
            "start": bound_text(self.start) if self.start else None,
            "end": bound_text(self.end) if self.end else None,
            "window": self.window,
            "features": list(self.features),
            "horizon": self.horizon,
            **(
                {"search": {"candidates": [candidate.to_dict() for candidate in self.search]}}
                if self.search is not None
                else {
                    "model": {
                        "type": self.model_type,
                        "params": json.loads(json.dumps(self.model_params)),
                    }
                }
            ),
            "validation": (
                {"method": "walk_forward", "folds": self.validation_folds}
                if self.validation_method == "walk_forward"
                else {"method": "holdout", "fraction": self.validation_fraction}
            ),
            "seed": self.seed,
            # Left out when absent, so configs stored before calibration existed compare equal.
            **(
                {}
                if self.calibration_method is None
                else {
                    "calibration": {
                        "method": self.calibration_method,
                        "fraction": self.calibration_fraction,
                    }
                }
            ),
        }

    def range_start(self) -> datetime.datetime | None:
        """The first instant of the candle range (UTC), or None for "from the first candle"."""
        return bound_first_instant(self.start) if self.start is not None else None

    def range_end(self) -> datetime.datetime | None:
        """The last instant of the candle range (UTC, inclusive), or None for "up to the last"."""
        return bound_last_instant(self.end) if self.end is not None else None

    def with_overrides(
        self,
        *,
        symbols: Sequence[str] | None = None,
        model_type: str | None = None,
        seed: int | None = None,
        start: object = None,
        end: object = None,
        name: str | None = None,
    ) -> TrainingConfig:
        """A validated copy with some fields replaced (None keeps the current value).

        Switching to another model type replaces the params with that type's
        ``DEFAULT_MODEL_PARAMS``, since the current params belong to the current type; naming
        the current type keeps the params as they are. Naming a model type on a search config
        trains that one model (its default params) instead of searching.
        """
        data = self.to_dict()
        if symbols is not None:
            data["symbols"] = list(symbols) if not isinstance(symbols, str) else symbols
        if model_type is not None and (model_type != self.model_type or self.search is not None):
            data.pop("search", None)
            data["model"] = {"type": model_type}
        if seed is not None:
            data["seed"] = seed
        # Validated with the file's own bounds: --start alone must still be before the file's end.
        if start is not None:
            data["start"] = start
        if end is not None:
            data["end"] = end
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
