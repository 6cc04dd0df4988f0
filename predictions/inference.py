"""Serving: which version answers a request, and that version loaded and ready to score.

1. **Routes** (``route_cache``, ``model_route``): every model's champion and challengers, read
   in one query and kept per process under the routing generation (``RoutingGeneration``, which
   the database changes on every committed write to models and versions), so an activation made
   by any process on any host is noticed at the next request, with no restart.
2. **Loaded models** (``model_cache``): several loaded models (champions of several named
   models, and the challengers scored beside them in shadow), each keyed by (version pk,
   artifact sha256), so nothing is reloaded unless the key changed. A new artifact is verified
   and loaded before it replaces the old one; if it fails, that model's previous champion keeps
   serving (and is what the audit rows record), and the load is retried after
   ``MODEL_RELOAD_RETRY_SECONDS`` instead of on every request: a broken artifact is then read
   and hashed once per pause, not by every request (a large artifact costs a full read and
   sha256 each time). ``/health/ready`` retries at once, so an artifact that comes back is
   picked up by the next probe, or the next request after the pause, whichever comes first.
   At most ``MODEL_CACHE_SIZE`` models stay loaded (the oldest loaded goes first), plus the
   model each named model last served, kept for that fallback.
3. **One-row probabilities** (``compile_predictor``), exact to the bit:
   ``Pipeline.predict_proba`` on one row spends ~0.2 ms validating its input and ~1 µs computing.
   For a (standard-scaled) binary logistic regression the computation is short enough to repeat
   here with the very same NumPy operations, in the same order, on the same shapes, so the result
   is identical bit for bit. That is checked when the model is loaded, row by row against
   ``predict_proba``; a model that fails the check, or any other model type, is served through
   ``predict_proba`` itself. Inputs are validated by the caller (finite, right width).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import FilteredRelation, Q, QuerySet
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from features.candles import normalise_symbol
from mlcore.metrics import MODEL_LOAD_FAILURES
from mlengine.errors import DomainError
from models_registry.artifacts import artifact_load
from models_registry.errors import AmbiguousModel, NoActiveModel, UnknownModel
from models_registry.models import ModelVersion, RegisteredModel, RoutingGeneration
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import parse_model_name
from predictions.errors import ModelUnavailable

logger = logging.getLogger(__name__)


# Routing: which model (and so which champion and challengers) serves a symbol.
@dataclass(frozen=True)
class VersionKey:
    """What identifies a loaded model in a process: the row and its artifact's sha256."""

    pk: int
    version: int
    sha256: str

    @property
    def label(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class ModelRoute:
    """A model as ``/predict`` serves it: its champion's key (None: no champion) and its
    challengers' keys, read together in one query (``serving_routes``)."""

    model_id: int
    name: str
    symbols: tuple[str, ...]
    champion: VersionKey | None
    challengers: tuple[VersionKey, ...] = ()


def _serving_queryset() -> QuerySet[RegisteredModel]:
    """Every model joined with its serving versions (champion and challengers), as the rows
    ``serving_routes`` reads: one row per serving version, or one with NULLs for a model with
    none."""
    serving = FilteredRelation(
        "versions", condition=Q(versions__is_active=True) | Q(versions__is_challenger=True)
    )
    return (
        RegisteredModel.objects.annotate(serving=serving)
        .values_list(
            "pk",
            "name",
            "symbols",
            "serving__pk",
            "serving__version",
            "serving__artifact_sha256",
            "serving__is_active",
        )
        .order_by("name", "-serving__version")
    )


@functools.cache
def _serving_sql(alias: str) -> tuple[str, tuple]:
    """``_serving_queryset``'s SQL, compiled once per database: building and compiling the
    queryset costs several times what PostgreSQL takes to answer it."""
    sql, params = _serving_queryset().query.get_compiler(using=alias).as_sql()
    return sql, tuple(params)


def serving_routes() -> dict[str, ModelRoute]:
    """Every model by name with its champion and challengers, in ONE query (what ``RouteCache``
    keeps): the models joined with their serving versions (active or challenger). There are a
    handful of models, and a query without parameters is compiled once."""
    sql, params = _serving_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    symbols_field = RegisteredModel._meta.get_field("symbols")
    found: dict[str, tuple[int, tuple[str, ...], list[tuple[bool, VersionKey]]]] = {}
    for pk, name, raw_symbols, v_pk, v_number, v_sha, v_active in rows:
        entry = found.get(name)
        if entry is None:
            listed = symbols_field.from_db_value(raw_symbols, None, connection) or ()
            entry = found[name] = (int(pk), tuple(listed), [])
        if v_pk is not None:
            entry[2].append((bool(v_active), VersionKey(int(v_pk), int(v_number), str(v_sha))))
    return {
        name: ModelRoute(
            model_id=pk,
            name=name,
            symbols=listed,
            champion=next((key for active, key in keys if active), None),
            challengers=tuple(key for active, key in keys if not active),
        )
        for name, (pk, listed, keys) in found.items()
    }


@functools.cache
def _generation_sql(alias: str) -> tuple[str, tuple]:
    sql, params = (
        RoutingGeneration.objects.filter(pk=1)
        .values_list("generation")
        .query.get_compiler(using=alias)
        .as_sql()
    )
    return sql, tuple(params)


def routing_generation() -> int | None:
    """The routing generation (``RoutingGeneration``): one indexed read of one row, whose value
    changes with every committed write to models and versions. None if the row is missing."""
    sql, params = _generation_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


@functools.cache
def _guard_sql(alias: str) -> tuple[str, int, int]:
    """``EXISTS (the generation row with a given value)``, compiled once per database, and the
    positions of its two parameters (the row's key and the value)."""
    marker = -(2**62)
    sql, params = (
        RoutingGeneration.objects.filter(pk=1, generation=marker)
        .values("pk")
        .query.get_compiler(using=alias)
        .as_sql()
    )
    return f"EXISTS ({sql})", list(params).index(1), list(params).index(marker)


@dataclass(frozen=True)
class RoutesSnapshot:
    """Every model's route, and the routing generation they were read under (None: unknown)."""

    routes: dict[str, ModelRoute]
    generation: int | None

    def guard(self) -> tuple[str, tuple] | None:
        """The condition (SQL, parameters) under which these routes are still the database's:
        for an INSERT that must write only then (``mlengine.db.postgresql.compiler``)."""
        if self.generation is None:
            return None
        sql, key_at, value_at = _guard_sql(DEFAULT_DB_ALIAS)  # the ``connection`` proxy's
        params = [None, None]
        params[key_at], params[value_at] = 1, self.generation
        return sql, tuple(params)


class RouteCache:
    """This process's copy of ``serving_routes()``, kept while the routing generation is the one
    read just before it: each request costs one read of one row instead of the routes' join (or
    none, when its write carries the snapshot's ``guard()``), and a change committed by any
    process on any host is still seen by the next request.

    Its owner is this module (``route_cache``); its bound is one copy per database alias.
    ``hits`` and ``misses`` count its answers.
    """

    def __init__(self) -> None:
        self._copies: dict[str, RoutesSnapshot] = {}
        self.hits = 0
        self.misses = 0

    def snapshot(self, *, check: bool = True) -> RoutesSnapshot:
        """The routes as the database has them now (``check``), or, unchecked, this process's
        copy without a query: only for a caller whose write carries the snapshot's ``guard()``
        and starts again with a checked one when that write is refused."""
        alias = DEFAULT_DB_ALIAS  # the ``connection`` proxy's, without looking it up
        copy = self._copies.get(alias)
        if not check and copy is not None:
            self.hits += 1
            return copy
        # The generation first: routes read after it are at least as new, so a copy is never
        # kept under a generation older than what it shows (a later change is a miss).
        generation = routing_generation()
        if generation is not None and copy is not None and copy.generation == generation:
            self.hits += 1
            return copy
        self.misses += 1
        snapshot = RoutesSnapshot(routes=serving_routes(), generation=generation)
        if generation is not None:
            self._copies[alias] = snapshot
        return snapshot

    def routes(self) -> dict[str, ModelRoute]:
        """Every model's route as the database has it now."""
        return self.snapshot().routes


route_cache = RouteCache()


def route_symbol(routes: dict[str, ModelRoute], symbol: str, *, model: str | None) -> ModelRoute:
    """The routing rule, on ``serving_routes``'s answer. ``model`` given: that model (404
    ``unknown_model`` if none). Otherwise the model whose symbols list ``symbol``; when several
    do, ``default`` if it is one of them, else 400 ``ambiguous_model`` naming them; a symbol no
    model lists is served by ``default``."""
    if model is not None:
        route = routes.get(model)
        if route is None:
            raise UnknownModel.of(model)
        return route
    symbol = normalise_symbol(symbol)
    listing = [route for route in routes.values() if symbol in route.symbols]
    if len(listing) == 1:
        return listing[0]
    names = sorted(route.name for route in listing)
    if listing and DEFAULT_MODEL_NAME not in names:
        raise AmbiguousModel(
            f"{symbol} is served by the models {', '.join(names)}; choose one with model=NAME.",
            details={"symbol": symbol, "models": names},
        )
    route = routes.get(DEFAULT_MODEL_NAME)
    if route is None:  # a database where no model exists yet
        return ModelRoute(model_id=0, name=DEFAULT_MODEL_NAME, symbols=(), champion=None)
    return route


def model_route(
    *, symbol: str, model: str | None = None, snapshot: RoutesSnapshot | None = None
) -> ModelRoute:
    """The route of one ``/predict``: ``route_symbol`` on ``snapshot``, else on the routes as the
    database has them now (``route_cache``)."""
    if model is not None:
        parse_model_name(model)
    routes = (snapshot or route_cache.snapshot()).routes
    return route_symbol(routes, symbol, model=model)


def model_routes(
    *, symbols: Iterable[str], model: str | None = None
) -> dict[str, ModelRoute | DomainError]:
    """The route of each symbol of a batch (or the error that symbol gets), on ``route_cache``.
    A named ``model`` that does not exist is the whole batch's ``UnknownModel`` (404)."""
    if model is not None:
        parse_model_name(model)
    symbols = list(symbols)
    routes = route_cache.routes()
    if model is not None and model not in routes:
        raise UnknownModel.of(model)
    answer: dict[str, ModelRoute | DomainError] = {}
    for symbol in symbols:
        try:
            answer[symbol] = route_symbol(routes, symbol, model=model)
        except DomainError as exc:
            answer[symbol] = exc
    return answer


# Loaded models.

# What a failed load raises: a refused artifact, a bad spec, an unreadable file, a row deleted.
_LOAD_ERRORS = (DomainError, KeyError, ValueError, OSError, ModelVersion.DoesNotExist)


@dataclass(frozen=True)
class LoadedModel:
    pk: int
    version: int
    sha256: str
    model_id: int
    model_name: str
    window: int
    horizon: int
    features: tuple[str, ...]
    pipeline: Any = field(repr=False)
    predict_up: Callable[[np.ndarray], float] = field(repr=False, default=None)  # type: ignore[assignment]
    predictor: str = "predict_proba"

    @property
    def label(self) -> str:
        return f"v{self.version}"

    @functools.cached_property
    def version_row(self) -> ModelVersion:
        """An unsaved stand-in for this version's row, attached to each audit row so that its
        representation reads the version's number and its model's name without a query."""
        return ModelVersion(
            pk=self.pk,
            version=self.version,
            model=RegisteredModel(pk=self.model_id, name=self.model_name),
        )


@dataclass
class ModelCacheStats:
    loads: int = 0
    load_failures: int = 0
    stale_serves: int = 0


class ModelCache:
    """Thread-safe holder of this process's loaded models.

    ``get_champion(route)`` is what ``/predict`` serves (with the per-model fallback to the
    model's previous champion); ``get_version(key, ...)`` loads any version by key, the same way
    but without fallback (challengers: phase 2 catches its ``ModelUnavailable``).
    """

    def __init__(self) -> None:
        self._loaded: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()
        # What each model (by id) last served: kept out of the LRU for the stale fallback.
        self._serving: dict[int, LoadedModel] = {}
        self._stale: set[int] = set()
        self._lock = threading.Lock()
        self._failed: dict[tuple[int, str], float] = {}
        self.stats = ModelCacheStats()

    @property
    def current(self) -> LoadedModel | None:
        """What ``default`` last served in this process (None before its first request)."""
        return next((m for m in self._serving.values() if m.model_name == DEFAULT_MODEL_NAME), None)

    def loaded(self) -> list[LoadedModel]:
        """Every model held in memory, oldest loaded first."""
        return list(self._loaded.values())

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
            self._serving.clear()
            self._failed.clear()
            self._stale.clear()
            self.stats = ModelCacheStats()

    @property
    def serving_stale(self) -> bool:
        """True while a model in memory is kept only because its champion failed to load."""
        return bool(self._stale)

    def is_stale(self, model_id: int) -> bool:
        return model_id in self._stale

    def get_active(self, *, retry_now: bool = False) -> LoadedModel:
        """``default``'s champion (``/health``, tools): its route, then ``get_champion``."""
        routes = route_cache.routes()
        route = routes.get(DEFAULT_MODEL_NAME) or ModelRoute(
            model_id=0, name=DEFAULT_MODEL_NAME, symbols=(), champion=None
        )
        return self.get_champion(route, retry_now=retry_now)

    def get_champion(self, route: ModelRoute, *, retry_now: bool = False) -> LoadedModel:
        """The model to serve for ``route``: its champion, loaded once per (pk, sha256).

        ``NoActiveModel`` (503) when the model has no champion. When the champion cannot be
        loaded, the model's previous champion keeps serving (``serving_stale``); with none in
        memory, ``ModelUnavailable`` (503). ``retry_now`` retries a failed load without waiting
        for ``MODEL_RELOAD_RETRY_SECONDS`` (``/health/ready``)."""
        key = route.champion
        if key is None:
            raise NoActiveModel(
                f"No version of the model {route.name} is active; train one and activate it.",
                details={"model": route.name},
            )
        loaded = self._loaded.get((key.pk, key.sha256))
        if loaded is None:
            try:
                loaded = self.get_version(
                    key, model_id=route.model_id, model_name=route.name, retry_now=retry_now
                )
            except ModelUnavailable:
                previous = self._serving.get(route.model_id)
                if previous is None:
                    raise ModelUnavailable(
                        f"The active model {route.name} {key.label} cannot be loaded and no "
                        "earlier model is in memory.",
                        details={"version": key.label, "model": route.name},
                    ) from None
                self.stats.stale_serves += 1
                self._stale.add(route.model_id)
                return previous
        self._serving[route.model_id] = loaded
        self._stale.discard(route.model_id)
        return loaded

    def get_version(
        self, key: VersionKey, *, model_id: int, model_name: str, retry_now: bool = False
    ) -> LoadedModel:
        """The loaded model of ``key`` (any version: a champion or a challenger), verified and
        loaded on first use. A failed load is retried only after ``MODEL_RELOAD_RETRY_SECONDS``
        (at once with ``retry_now``); until then, and when it fails, ``ModelUnavailable``."""
        cache_key = (key.pk, key.sha256)
        loaded = self._loaded.get(cache_key)
        if loaded is not None:
            return loaded
        with self._lock:
            loaded = self._loaded.get(cache_key)
            if loaded is not None:
                return loaded  # another thread loaded it while we waited
            failed_at = self._failed.get(cache_key)
            pause = settings.MODEL_RELOAD_RETRY_SECONDS
            if retry_now or failed_at is None or time.monotonic() - failed_at >= pause:
                try:
                    name, spec = (
                        ModelVersion.objects.filter(pk=key.pk)
                        .values_list("artifact_name", "feature_spec")
                        .get()
                    )
                    loaded = _load_model(
                        pk=key.pk,
                        version=key.version,
                        sha256=key.sha256,
                        model_id=model_id,
                        model_name=model_name,
                        name=name,
                        spec=spec,
                    )
                except _LOAD_ERRORS as exc:
                    self._failed[cache_key] = time.monotonic()
                    self.stats.load_failures += 1
                    MODEL_LOAD_FAILURES.inc()
                    logger.error(
                        "cannot load model %s v%s (%s): %s",
                        model_name,
                        key.version,
                        key.sha256[:12],
                        exc,
                    )
                else:
                    self._loaded[cache_key] = loaded
                    while len(self._loaded) > max(1, settings.MODEL_CACHE_SIZE):
                        self._loaded.popitem(last=False)
                    self._failed.pop(cache_key, None)
                    self.stats.loads += 1
                    logger.info(
                        "loaded model %s v%s (%s)", model_name, key.version, key.sha256[:12]
                    )
                    return loaded
        raise ModelUnavailable(
            f"The model {model_name} {key.label} cannot be loaded.",
            details={"version": key.label, "model": model_name},
        )


def _load_model(
    *,
    pk: int,
    version: int,
    sha256: str,
    model_id: int,
    model_name: str,
    name: str,
    spec: dict,
) -> LoadedModel:
    pipeline = artifact_load(name=name, sha256=sha256)
    features = tuple(spec["features"])
    predict_up, predictor = compile_predictor(pipeline, width=len(features))
    return LoadedModel(
        pk=pk,
        version=version,
        sha256=sha256,
        model_id=model_id,
        model_name=model_name,
        window=int(spec["window"]),
        horizon=int(spec.get("horizon", 1)),
        features=features,
        pipeline=pipeline,
        predict_up=predict_up,
        predictor=predictor,
    )


def load_model_version(version: ModelVersion) -> LoadedModel:
    """Load any version (active or not), verifying its artifact first; for replays and tools."""
    return _load_model(
        pk=version.pk,
        version=version.version,
        sha256=version.artifact_sha256,
        model_id=version.model_id,
        model_name=version.model.name,
        name=version.artifact_name,
        spec=version.feature_spec,
    )


model_cache = ModelCache()


# One-row probabilities, exact to the bit (module docstring, 3).

Predictor = Callable[[np.ndarray], float]
CHECK_ROWS = 64


def generic_predictor(pipeline: Any) -> Predictor:
    """P(class 1) for one row (shape (1, n)) through the estimator's own ``predict_proba``."""

    def predict(row: np.ndarray) -> float:
        return float(pipeline.predict_proba(row)[0, 1])

    return predict


def _linear_predictor(pipeline: Pipeline) -> Predictor | None:
    steps = [step for _, step in pipeline.steps if step is not None and step != "passthrough"]
    if not steps or not isinstance(steps[-1], LogisticRegression):
        return None
    model = steps[-1]
    scalers = steps[:-1]
    if len(scalers) > 1 or any(not isinstance(s, StandardScaler) for s in scalers):
        return None
    if len(model.classes_) != 2 or model.coef_.shape[0] != 1:
        return None
    scaler = scalers[0] if scalers else None
    mean = scaler.mean_ if scaler is not None and scaler.with_mean else None
    scale = scaler.scale_ if scaler is not None and scaler.with_std else None
    coef_t = model.coef_.T
    intercept = model.intercept_

    def predict(row: np.ndarray) -> float:
        values = np.array(row, dtype=np.float64)  # a copy, as StandardScaler(copy=True) makes
        if mean is not None:
            values -= mean
        if scale is not None:
            values /= scale
        scores = values @ coef_t + intercept
        return float(expit(scores.reshape(-1))[0])

    return predict


def compile_predictor(pipeline: Any, *, width: int, seed: int = 0) -> tuple[Predictor, str]:
    """The fastest exact one-row predictor for ``pipeline`` and its name (``linear`` or
    ``predict_proba``)."""
    generic = generic_predictor(pipeline)
    fast = _linear_predictor(pipeline) if isinstance(pipeline, Pipeline) else None
    if fast is None:
        return generic, "predict_proba"
    rng = np.random.default_rng(seed)
    scaler = next((s for _, s in pipeline.steps if isinstance(s, StandardScaler)), None)
    centre = scaler.mean_ if scaler is not None and scaler.mean_ is not None else np.zeros(width)
    spread = scaler.scale_ if scaler is not None and scaler.scale_ is not None else np.ones(width)
    for _ in range(CHECK_ROWS):
        row = (centre + spread * rng.normal(0.0, 2.0, width)).reshape(1, -1)
        if fast(row) != generic(row):
            logger.warning("exact fast path disagrees with predict_proba; using predict_proba")
            return generic, "predict_proba"
    return fast, "linear"
