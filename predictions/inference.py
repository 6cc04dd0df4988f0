"""The per-process model cache.

Each web process keeps the active model in memory, keyed by version and artifact sha256. Every
request looks the active version up in the database first (one indexed SELECT, see
``_active_key``), so an activation made by any
process on any host is noticed at the next request, with no restart and no reload unless the
key changed. A new artifact is verified and loaded before it replaces the old one; if
it fails, the previous model keeps serving (and is what the audit rows record), and the load is
retried after ``MODEL_RELOAD_RETRY_SECONDS`` instead of on every request: a broken artifact is
then read and hashed once per pause, not by every request (a large artifact costs a full read
and sha256 each time). ``/health/ready`` retries at once, so an artifact that comes back is
picked up by the next probe, or the next request after the pause, whichever comes first.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection

from mlcore.metrics import MODEL_LOAD_FAILURES
from mlengine.errors import DomainError
from models_registry.artifacts import artifact_load
from models_registry.errors import NoActiveModel
from models_registry.models import ModelVersion
from predictions.errors import ModelUnavailable
from predictions.fast_predict import compile_predictor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    pk: int
    version: int
    sha256: str
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
        representation reads the version's number without a query."""
        return ModelVersion(pk=self.pk, version=self.version)


@dataclass
class ModelCacheStats:
    loads: int = 0
    load_failures: int = 0
    stale_serves: int = 0


class ModelCache:
    """Thread-safe holder of this process's loaded model."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self._failed: dict[tuple[int, str], float] = {}
        self._stale = False
        self.stats = ModelCacheStats()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def clear(self) -> None:
        with self._lock:
            self._current = None
            self._failed.clear()
            self._stale = False
            self.stats = ModelCacheStats()

    @property
    def serving_stale(self) -> bool:
        """True while the model in memory is kept only because the active one failed to load."""
        return self._stale

    def get_active(self, *, retry_now: bool = False) -> LoadedModel:
        """The model to serve: the active version, loaded once per (version, sha256).

        ``retry_now`` retries a failed load without waiting for ``MODEL_RELOAD_RETRY_SECONDS``
        (``/health/ready``)."""
        row = _active_key()
        if row is None:
            raise NoActiveModel("No model version is active; train one and activate it.")
        pk, version, sha256 = row
        current = self._current
        if current is not None and current.version == version and current.sha256 == sha256:
            self._stale = False
            return current
        name, spec = (
            ModelVersion.objects.filter(pk=pk).values_list("artifact_name", "feature_spec").get()
        )
        loaded = self._load(
            pk=pk, version=version, sha256=sha256, name=name, spec=spec, retry_now=retry_now
        )
        self._stale = loaded.pk != pk
        return loaded

    def _load(
        self,
        *,
        pk: int,
        version: int,
        sha256: str,
        name: str,
        spec: dict,
        retry_now: bool = False,
    ) -> LoadedModel:
        key = (version, sha256)
        with self._lock:
            current = self._current
            if current is not None and (current.version, current.sha256) == key:
                return current  # another thread loaded it while we waited
            failed_at = self._failed.get(key)
            pause = settings.MODEL_RELOAD_RETRY_SECONDS
            if retry_now or failed_at is None or time.monotonic() - failed_at >= pause:
                try:
                    loaded = _load_model(
                        pk=pk, version=version, sha256=sha256, name=name, spec=spec
                    )
                except (DomainError, KeyError, ValueError, OSError) as exc:
                    self._failed[key] = time.monotonic()
                    self.stats.load_failures += 1
                    MODEL_LOAD_FAILURES.inc()
                    logger.error("cannot load model v%s (%s): %s", version, sha256[:12], exc)
                else:
                    self._current = loaded
                    self._failed.pop(key, None)
                    self.stats.loads += 1
                    logger.info("loaded model v%s (%s)", version, sha256[:12])
                    return loaded
            if current is None:
                raise ModelUnavailable(
                    f"The active model v{version} cannot be loaded and no earlier model is in "
                    "memory.",
                    details={"version": f"v{version}"},
                )
            self.stats.stale_serves += 1
            return current


def _load_model(*, pk: int, version: int, sha256: str, name: str, spec: dict) -> LoadedModel:
    pipeline = artifact_load(name=name, sha256=sha256)
    features = tuple(spec["features"])
    predict_up, predictor = compile_predictor(pipeline, width=len(features))
    return LoadedModel(
        pk=pk,
        version=version,
        sha256=sha256,
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
        name=version.artifact_name,
        spec=version.feature_spec,
    )


def _active_key() -> tuple[int, int, str] | None:
    """(pk, version, sha256) of the active version: the one query every request pays, so it is
    plain SQL on the partial-unique index rather than an ORM query (a tenth of the cost)."""
    table = connection.ops.quote_name(ModelVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, version, artifact_sha256 FROM {table} WHERE is_active = %s",  # noqa: S608
            [True],
        )
        row = cursor.fetchone()
    return (int(row[0]), int(row[1]), str(row[2])) if row else None


model_cache = ModelCache()
