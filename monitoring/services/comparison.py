"""Challenger comparison: each challenger against its model's champion on the live requests both
scored and whose outcome is known.

A pair is a challenger's shadow row and the champion row it was scored beside (the shadow's
``champion_request_id``), both with a realised outcome. On those pairs, per model: accuracy,
log loss and Brier score of each, and the differences (challenger minus champion) with a 95%
interval from the paired stationary block bootstrap of ``mlcore.bootstrap`` over the rows'
candle times (``as_of``): every request on one candle is one unit, and blocks of consecutive
candles keep their autocorrelation. The verdict is on log loss, the primary figure (a proper
score of the probabilities, which accuracy is not): ``better`` when the whole interval lies
below zero, ``worse`` when it lies above, else ``undecided``, with the paired count still
needed at the current estimate.

Deterministic: the same rows give the same figures bit for bit (fixed seed, rows in candle
order, then request order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import F, OuterRef, Subquery

from mlcore.bootstrap import DEFAULT_RESAMPLES, paired_bootstrap_many
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.promotion import register_promotion_evidence
from models_registry.selectors import ModelRef, challengers_of, champion_of, registered_model_of
from models_registry.training.walk_forward import row_log_loss
from predictions.models import PredictionRecord

PRIMARY_FIGURE = "log_loss"
COMPARISON_SEED = 0
# Fewer candles than this cannot give an interval worth the name: verdict undecided.
MIN_UNITS = 2
# (name, lower is better)
FIGURES = (("accuracy", False), ("log_loss", True), ("brier", True))


def paired_outcomes(*, challenger: ModelVersion, limit: int | None = None) -> dict[str, np.ndarray]:
    """The pairs of ``challenger``: its shadow rows with a realised outcome whose champion row
    has one too, the newest ``limit`` of them (``COMPARISON_MAX_PAIRS``), in candle order.
    Arrays ``times`` (as_of, ns), ``challenger`` and ``champion`` (probabilities),
    ``challenger_outcome`` and ``champion_outcome`` (their horizons may differ), and
    ``champion_version`` (version numbers)."""
    limit = settings.COMPARISON_MAX_PAIRS if limit is None else limit
    champion_row = PredictionRecord.objects.filter(request_id=OuterRef("champion_request_id"))
    rows = (
        PredictionRecord.objects.filter(
            model_version=challenger,
            role=PredictionRecord.Role.CHALLENGER,
            outcome__isnull=False,
        )
        .annotate(
            champion_prediction=Subquery(champion_row.values("prediction")[:1]),
            champion_outcome=Subquery(champion_row.values("outcome")[:1]),
            champion_version=Subquery(champion_row.values("model_version__version")[:1]),
        )
        .filter(champion_outcome__isnull=False)
        .order_by("-as_of", "-id")
        .values_list(
            "as_of",
            "prediction",
            "outcome",
            "champion_prediction",
            "champion_outcome",
            F("champion_version"),
        )
    )
    listed = list(rows[:limit])[::-1]  # the newest, then back in candle order
    return {
        "times": np.array([row[0].timestamp() for row in listed], dtype=np.float64),
        "challenger": np.array([row[1] for row in listed], dtype=np.float64),
        "challenger_outcome": np.array([row[2] for row in listed], dtype=np.float64),
        "champion": np.array([row[3] for row in listed], dtype=np.float64),
        "champion_outcome": np.array([row[4] for row in listed], dtype=np.float64),
        "champion_version": np.array([row[5] for row in listed], dtype=np.int64),
    }


def _per_row(probabilities: np.ndarray, outcomes: np.ndarray) -> dict[str, np.ndarray]:
    hits = ((probabilities >= 0.5) == (outcomes == 1)).astype(np.float64)
    return {
        "accuracy": hits,
        "log_loss": row_log_loss(outcomes, probabilities),
        "brier": (probabilities - outcomes) ** 2,
    }


def compare_paired(
    pairs: dict[str, np.ndarray], *, seed: int = COMPARISON_SEED, resamples: int = DEFAULT_RESAMPLES
) -> dict[str, Any]:
    """The figures of one challenger's pairs (``paired_outcomes``'s arrays): pure numpy."""
    count = int(pairs["challenger"].size)
    units = int(np.unique(pairs["times"]).size) if count else 0
    answer: dict[str, Any] = {
        "paired_count": count,
        "candles": units,
        "primary": PRIMARY_FIGURE,
        "sign": "difference = challenger minus champion; lower log loss and Brier are better, "
        "higher accuracy is better",
    }
    if count == 0:
        for name, _ in FIGURES:
            answer[name] = {"challenger": None, "champion": None, "difference": None}
        answer.update(verdict="undecided", rows_needed=None)
        return answer
    challenger = _per_row(pairs["challenger"], pairs["challenger_outcome"])
    champion = _per_row(pairs["champion"], pairs["champion_outcome"])
    results = None
    if units >= MIN_UNITS:
        results = paired_bootstrap_many(
            {name: (challenger[name], champion[name]) for name, _ in FIGURES},
            times=pairs["times"],
            seed=seed,
            resamples=resamples,
        )
    for name, lower_is_better in FIGURES:
        answer[name] = {
            "challenger": float(challenger[name].mean()),
            "champion": float(champion[name].mean()),
            "difference": (
                results[name].as_dict(lower_is_better=lower_is_better) if results else None
            ),
        }
    primary = answer[PRIMARY_FIGURE]["difference"]
    answer["verdict"] = primary["verdict"] if primary else "undecided"
    answer["rows_needed"] = primary["rows_needed"] if primary else None
    return answer


def challenger_comparison(*, challenger: ModelVersion) -> dict[str, Any]:
    """One challenger's comparison with its model's champion (see the module docstring)."""
    pairs = paired_outcomes(challenger=challenger)
    champion = champion_of(model=challenger.model)
    versions = sorted({int(v) for v in pairs["champion_version"]})
    return {
        "challenger": challenger.label,
        "champion": champion.label if champion else None,
        "champion_versions_paired": [f"v{number}" for number in versions],
        # The pairs read are the newest this many (COMPARISON_MAX_PAIRS).
        "max_pairs": settings.COMPARISON_MAX_PAIRS,
        **compare_paired(pairs),
    }


def model_comparison(*, model: ModelRef) -> dict[str, Any]:
    """``GET /registry/models/{name}/comparison``: every challenger of ``model`` against its
    champion, newest challenger first (``UnknownModel`` 404 for an unknown name)."""
    registered: RegisteredModel = registered_model_of(model)
    champion = champion_of(model=registered)
    return {
        "model": registered.name,
        "champion": champion.label if champion else None,
        "primary": PRIMARY_FIGURE,
        "challengers": [
            challenger_comparison(challenger=version)
            for version in challengers_of(model=registered)
        ],
    }


def register() -> None:
    """Fill the registry's promotion-evidence slot (``models_registry.promotion``)."""
    register_promotion_evidence(lambda version: challenger_comparison(challenger=version))
