"""Training: the one service behind ``manage.py train_model``, the Celery task, the REST
endpoint and the admin. Fetch candles → build the dataset → fit → evaluate → save the artifact →
register the version, recording every step on a ``TrainingRun``.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from celery import chord
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from features.candles import normalise_symbol
from features.history import FetchProgress
from features.sources import get_candle_source
from mlengine.celery import app
from mlengine.errors import DomainError, InvalidParameter, UnknownSymbol
from models_registry.artifacts import artifact_delete, artifact_write, serialize_model
from models_registry.errors import TrainingFailed
from models_registry.models import ModelVersion, RegisteredModel, TrainingRun
from models_registry.services.activation import challenger_add, model_version_activate
from models_registry.training.baseline import feature_baseline
from models_registry.training.config import (
    ConfigError,
    TrainingConfig,
    bound_text,
    load_training_config,
)
from models_registry.training.dataset import Dataset, DatasetError, build_dataset
from models_registry.training.search import candles_to_bytes, search_points
from models_registry.training.trainer import TrainingResult, train_model

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, str], None]
STAGES: tuple[str, ...] = ("fetch", "features", "fit", "evaluate", "save")
DEFAULT_CONFIG_PATH = Path(settings.BASE_DIR) / "configs" / "train.yaml"
STAGE_LENGTH: int = TrainingRun._meta.get_field("stage").max_length or 255
# A search's Celery tasks, sent by name: their module (tasks.py) imports this one.
SEARCH_FOLD_TASK = "models_registry.search_fold"
SEARCH_FINISH_TASK = "models_registry.search_finish"
SEARCH_FAILED_TASK = "models_registry.search_failed"
SEARCH_ARTIFACT_PREFIX = "searches"


def _noop(stage: str, message: str) -> None:
    return None


def training_config_resolve(
    *,
    config_path: str | Path | None = None,
    config_data: dict[str, Any] | None = None,
    symbols: list[str] | None = None,
    model_type: str | None = None,
    seed: int | None = None,
    start: str | None = None,
    end: str | None = None,
    name: str | None = None,
) -> TrainingConfig:
    """The config to train with: a file (default ``configs/train.yaml``) or a dict, plus overrides
    (``name``: the registered model to train a version of).

    ``start`` / ``end`` are ISO dates or datetimes (UTC), validated like the file's keys and
    against the other bound. A bad config raises ``InvalidParameter`` (400) naming the offending
    key, before any work.
    """
    try:
        if config_data is not None:
            config = TrainingConfig.from_dict(config_data)
        else:
            config = load_training_config(config_path or DEFAULT_CONFIG_PATH)
        if (
            symbols
            or model_type
            or seed is not None
            or start is not None
            or end is not None
            or name is not None
        ):
            config = config.with_overrides(
                symbols=symbols, model_type=model_type, seed=seed, start=start, end=end, name=name
            )
    except ConfigError as exc:
        key = getattr(exc, "key", None) or "config"
        raise InvalidParameter(f"invalid training config: {exc}", details={key: str(exc)}) from exc
    return config


def training_data_check(*, config: TrainingConfig) -> None:
    """Refuse, before any run is recorded, a config the candle source cannot train.

    An unknown symbol is a 404 ``unknown_symbol``: checked against the source's list when it has
    one (the bundled data), else by asking the source for the candles (an upstream answers 404
    for a symbol it does not know; its other failures are their own 502 / 503 / 504). A date
    range that holds no candles, or too few for both splits, is a 400 ``invalid_parameter``.
    Building the dataset here costs one pass over the candles, so a request that would only leave
    a failed run behind is answered at once instead.
    """
    source = get_candle_source()
    known = source.symbols()
    if known is not None:
        unknown = [symbol for symbol in config.symbols if symbol not in known]
        if unknown:
            raise UnknownSymbol(
                f"Unknown symbol {unknown[0]!r}.",
                details={"symbols": unknown, "known_symbols": known},
            )
    # A source that can list its symbols holds its history locally: read all of it. An upstream
    # is asked for one page only (the newest within the range), so the request stays quick; when
    # that page is short it is the whole range and the check is exact, else only "no candles" is.
    page = None if known is not None else settings.MARKET_DATA_FETCH_LIMIT
    candles = {
        symbol: source.get_history(
            symbol, start=config.range_start(), end=config.range_end(), max_candles=page
        )
        for symbol in config.symbols
    }
    complete = page is None or all(len(frame) < page for frame in candles.values())
    try:
        build_dataset(candles, config)
    except DatasetError as exc:
        if not complete and all(len(frame) for frame in candles.values()):
            return  # more candles than one page: the run reads them all and decides
        raise InvalidParameter(
            f"invalid training range: {exc}",
            details={
                "start": bound_text(config.start) if config.start else None,
                "end": bound_text(config.end) if config.end else None,
                "reason": str(exc),
            },
        ) from exc


def training_candles_fetch(
    *, config: TrainingConfig, progress: Callable[[FetchProgress], None] | None = None
) -> dict[str, pd.DataFrame]:
    """Each configured symbol's candles within the config's range, all of them (an upstream is
    read page by page, up to ``MARKET_DATA_MAX_CANDLES`` per symbol); ``progress`` hears of
    every page. A history cut short by that bound is logged as a warning."""
    source = get_candle_source()
    out: dict[str, pd.DataFrame] = {}

    def report(page: FetchProgress) -> None:
        if page.done and page.truncated:
            logger.warning("training data: %s", page.message())
        if progress is not None:
            progress(page)

    for symbol in config.symbols:
        out[symbol] = source.get_history(
            symbol, start=config.range_start(), end=config.range_end(), progress=report
        )
    return out


def training_run_create(
    *,
    config: TrainingConfig,
    source: str,
    requested_by: Any = None,
    activate: bool = False,
    challenger: bool = False,
) -> TrainingRun:
    """Record a queued training run (``activate``: make the version its model's champion;
    ``challenger``: add it as a challenger; not both)."""
    if activate and challenger:
        raise InvalidParameter(
            "a version is either activated or added as a challenger, not both",
            details={"activate": True, "challenger": True},
        )
    user = requested_by if getattr(requested_by, "is_authenticated", False) else None
    return TrainingRun.objects.create(
        config=config.to_dict(),
        source=source,
        requested_by=user,
        activate=activate,
        challenger=challenger,
    )


def registered_model_for_training(*, config: TrainingConfig) -> RegisteredModel:
    """The model a config trains a version of, created on first use with the config's symbols
    (upper-case) and the config itself."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=config.name,
        defaults={
            "symbols": [normalise_symbol(symbol) for symbol in config.symbols],
            "config": config.to_dict(),
        },
    )
    return model


def _version_register(
    *, run: TrainingRun, result: TrainingResult, dataset: Dataset, artifact: Any
) -> ModelVersion:
    """Create the version row with its model's next free number (the model is created on first
    use).

    Two trainings finishing together may both read the same maximum; the unique constraint
    rejects the second insert and it retries with the next number.
    """
    config: TrainingConfig = dataset.config
    baseline = {
        "features": result.baseline,
        "prediction": feature_baseline(
            np.asarray(result.validation_predictions, dtype="float64"),
            seed=config.seed,
            drift_window=settings.DRIFT_WINDOW,
            psi_floor=settings.DRIFT_THRESHOLD,
            # Calibration windows follow candle time across symbols, as live windows do.
            times=result.validation_times,
        ),
    }
    fields = {
        "status": ModelVersion.Status.READY,
        "config": config.to_dict(),
        "feature_spec": {
            "window": config.window,
            "horizon": config.horizon,
            "features": list(result.feature_names),
        },
        "metrics": result.metrics,
        "dataset": dataset.window_info(),
        "baseline": baseline,
        "beats_baseline": bool(result.beats_baseline),
        "artifact_name": artifact.name,
        "artifact_sha256": artifact.sha256,
        "artifact_size": artifact.size,
        "library_versions": result.library_versions,
        "training_duration_seconds": result.duration_seconds,
    }
    for attempt in range(20):
        try:
            with transaction.atomic():
                model = registered_model_for_training(config=config)
                latest = model.versions.aggregate(latest=Max("version"))["latest"] or 0
                version = ModelVersion.objects.create(model=model, version=latest + 1, **fields)
                TrainingRun.objects.filter(pk=run.pk).update(
                    model_version=version,
                    status=TrainingRun.Status.SUCCEEDED,
                    stage="done",
                    finished_at=timezone.now(),
                    error="",
                )
                return version
        except IntegrityError:
            if attempt == 19:
                raise
            logger.info("version number taken by a concurrent training, retrying")
    raise AssertionError("unreachable")


def _range_text(config: TrainingConfig) -> str:
    first = bound_text(config.start) if config.start else "the first candle"
    last = bound_text(config.end) if config.end else "the last candle"
    return f"{first} to {last}"


def _mark(run_id: int, **fields: Any) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def training_run_execute(
    *,
    run_id: int,
    progress: ProgressCallback | None = None,
    retryable: tuple[type[Exception], ...] = (),
) -> ModelVersion | None:
    """Run a queued ``TrainingRun`` to completion and return the new ready version.

    A config with a ``search:`` fetches the candles and builds the dataset here, then fans the
    (candidate, fold) pairs out as a Celery chord (``_search_dispatch``). Eager (no broker),
    the chord runs in this call and the version is returned; with a broker the run is left
    running on the workers and None is returned (``training_run_wait`` waits for it).

    Any failure marks the run ``failed`` with a one-line reason and leaves no version and no
    artifact behind, then raises ``TrainingFailed`` (or the domain error itself). An exception of
    a ``retryable`` type instead puts the run back to ``queued`` and is re-raised, for a caller
    (the Celery task) that will try again. A run that already succeeded returns its version, so
    a redelivered task does no work twice.
    """
    progress = progress or _noop
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status == TrainingRun.Status.SUCCEEDED and run.model_version_id:
            return run.model_version
        run.status = TrainingRun.Status.RUNNING
        run.started_at = timezone.now()
        run.finished_at = None
        run.error = ""
        run.save(update_fields=["status", "started_at", "finished_at", "error"])

    artifact = None
    try:
        config = TrainingConfig.from_dict(run.config)

        def step(stage: str, message: str) -> None:
            _mark(run_id, stage=stage)
            progress(stage, message)

        step("fetch", f"fetching candles for {', '.join(config.symbols)} ({_range_text(config)})")

        def fetched(page: FetchProgress) -> None:
            # The page line is the stage text while it reads: who polls the run sees it move.
            if not page.done:
                _mark(run_id, stage=page.message()[:STAGE_LENGTH])
            if not page.done or page.truncated:
                progress("fetch", page.message())

        candles = training_candles_fetch(config=config, progress=fetched)
        step("features", f"building features (window {config.window}, horizon {config.horizon})")
        dataset = build_dataset(candles, config)
        info = dataset.window_info()
        rows = (
            f"{config.validation_folds} walk-forward folds"
            if config.validation_method == "walk_forward"
            else f"{info['train_rows']} train, {info['validation_rows']} validation"
        )
        progress("features", f"{info['rows']} rows: {rows}")
        if config.search is not None:
            return _search_dispatch(run_id=run_id, candles=candles, dataset=dataset, step=step)
        result = train_model(
            dataset,
            progress=step,
            drift_window=settings.DRIFT_WINDOW,
            psi_floor=settings.DRIFT_THRESHOLD,
        )
        step("save", "writing the artifact and registering the version")
        artifact = artifact_write(data=serialize_model(result.pipeline))
        version = _version_register(run=run, result=result, dataset=dataset, artifact=artifact)
    except Exception as exc:
        if artifact is not None:
            artifact_delete(name=artifact.name)
        search_candles_delete(run_id=run_id)
        reason = error_line(exc)
        if retryable and isinstance(exc, retryable):
            _mark(run_id, status=TrainingRun.Status.QUEUED, error=f"will retry: {reason}")
            raise
        logger.warning("training run %s failed: %s\n%s", run_id, reason, traceback.format_exc())
        _mark(run_id, status=TrainingRun.Status.FAILED, error=reason, finished_at=timezone.now())
        if isinstance(exc, DomainError):
            raise
        raise TrainingFailed(f"Training failed: {reason}", details={"run": run_id}) from exc

    progress("save", f"registered {version.label}")
    if run.activate or run.challenger:
        _promote_after_training(
            run_id=run_id, version=version, actor=run.requested_by, challenger=run.challenger
        )
    return version


def _search_dispatch(
    *, run_id: int, candles: dict[str, pd.DataFrame], dataset: Dataset, step: ProgressCallback
) -> ModelVersion | None:
    """Record the search's tasks on the run and send them: one per (candidate, fold), a chord
    whose callback (``services.search.search_run_finish``) registers the winner, and whose
    error callback (``services.search.search_run_abort``) fails the run when the chord fails.

    Every task builds the dataset from the same candle file, written here to the artifact
    storage (shared by every worker and host), and checks its fingerprint against the one
    recorded here, so no task trains on other candles than the run fetched.
    """
    config = dataset.config
    points = search_points(config)
    folds = config.validation_folds
    candles_file = artifact_write(
        data=candles_to_bytes(candles), prefix=SEARCH_ARTIFACT_PREFIX, suffix=".npz"
    )
    total = len(points) * folds
    step("evaluate", f"search: {len(points)} candidates x {folds} folds = {total} Celery tasks")
    _mark(
        run_id,
        stage=f"search: 0 of {total} tasks done",
        progress={
            "total": total,
            "done": 0,
            "failed": 0,
            "candidates": [
                {"candidate": p.index, "type": p.model_type, "params": p.params} for p in points
            ],
            "tasks": [
                {
                    "candidate": p.index,
                    "fold": k,
                    "state": "queued",
                    "worker": "",
                    "log_loss": None,
                    "error": "",
                }
                for p in points
                for k in range(folds)
            ],
            "dataset": {
                "artifact": candles_file.name,
                "sha256": candles_file.sha256,
                "fingerprint": dataset.fingerprint,
                "rows": len(dataset.frame),
            },
        },
    )
    # Sent from a worker, the search's tasks go to the queue its run came from.
    parent = app.current_worker_task
    delivery = (parent.request.delivery_info or {}) if parent is not None else {}
    queue = None if parent is None or parent.request.is_eager else delivery.get("routing_key")
    options = {"queue": queue} if queue else {}
    # Outside a worker (the command) nothing may have imported the task modules yet: Celery's
    # autodiscovery runs on this signal, so the tasks named below are registered.
    app.loader.import_default_modules()
    header = [
        app.signature(SEARCH_FOLD_TASK, args=(run_id, point.index, fold), **options)
        for point in points
        for fold in range(folds)
    ]
    finish = app.signature(SEARCH_FINISH_TASK, args=(run_id,), **options)
    # A task killed by the hard time limit or lost with its worker never marks the run failed
    # itself: the chord's failure calls this (``services.search.search_run_abort``).
    finish.link_error(app.signature(SEARCH_FAILED_TASK, kwargs={"run_id": run_id}, **options))
    chord(header, finish).apply_async()
    run = TrainingRun.objects.select_related("model_version").get(pk=run_id)
    return run.model_version if run.status == TrainingRun.Status.SUCCEEDED else None


def search_candles_delete(*, run_id: int) -> None:
    """Remove a search's candle file, once the run has succeeded or failed."""
    run = TrainingRun.objects.filter(pk=run_id).values("progress").first()
    name = ((run or {}).get("progress") or {}).get("dataset", {}).get("artifact")
    if name:
        artifact_delete(name=name)


def training_run_wait(*, run_id: int, poll_seconds: float = 1.0) -> ModelVersion:
    """Wait for a run left to the workers (a search with a broker); its version, or
    ``TrainingFailed`` with the run's error."""
    while True:
        run = TrainingRun.objects.select_related("model_version").get(pk=run_id)
        if run.status == TrainingRun.Status.SUCCEEDED and run.model_version is not None:
            return run.model_version
        if run.status == TrainingRun.Status.FAILED:
            raise TrainingFailed(f"Training failed: {run.error}", details={"run": run_id})
        time.sleep(poll_seconds)


def _promote_after_training(
    *, run_id: int, version: ModelVersion, actor: Any, challenger: bool
) -> None:
    """Activate the new version, or add it as a challenger, as the run asked."""
    write = challenger_add if challenger else model_version_activate
    what = "added as a challenger" if challenger else "activated"
    try:
        write(
            version=version.version,
            model=version.model,
            actor=actor,
            actor_name="training",
            reason=f"{what} on completion of training run {run_id}",
        )
    except DomainError as exc:
        # The version is trained and registered; only the promotion was refused.
        _mark(run_id, error=f"trained but not {what}: {exc.message}")
        logger.warning("training run %s: %s not %s: %s", run_id, version, what, exc.message)
    version.refresh_from_db()


def error_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())[:500]


def model_train(
    *,
    config: TrainingConfig,
    source: str,
    requested_by: Any = None,
    activate: bool = False,
    challenger: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[TrainingRun, ModelVersion]:
    """Create a run and execute it in this process (the command and ``make run`` use this)."""
    run = training_run_create(
        config=config,
        source=source,
        requested_by=requested_by,
        activate=activate,
        challenger=challenger,
    )
    version = training_run_execute(run_id=run.pk, progress=progress)
    if version is None:
        version = training_run_wait(run_id=run.pk)
    run.refresh_from_db()
    version.refresh_from_db()
    return run, version
