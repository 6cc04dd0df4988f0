"""The per-process model cache: several loaded models (champions of several named models, and
the challengers phase 2 scores beside them), each keyed by (version pk, artifact sha256).

Every request resolves its model's route first (``models_registry.selectors.route_cache``: the
model, its champion and its challengers, checked against the routing generation), so an
activation made by any process on any host is noticed at the next request, with no restart and
no reload unless the key changed. A new artifact is verified and loaded before it replaces the
old one; if it fails, that model's previous champion keeps serving (and is what the audit rows
record), and the load is retried after ``MODEL_RELOAD_RETRY_SECONDS`` instead of on every
request: a broken artifact is then read and hashed once per pause, not by every request (a
large artifact costs a full read and sha256 each time). ``/health/ready`` retries at once, so an
artifact that comes back is picked up by the next probe, or the next request after the pause,
whichever comes first.
At most ``MODEL_CACHE_SIZE`` models stay loaded (the oldest loaded goes first), plus the model
each named model last served, kept for that fallback.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from mlcore.metrics import MODEL_LOAD_FAILURES
from mlengine.errors import DomainError
from models_registry.artifacts import artifact_load
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.selectors import ModelRoute, VersionKey, route_cache
from predictions.errors import ModelUnavailable
from predictions.fast_predict import compile_predictor

logger = logging.getLogger(__name__)


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
