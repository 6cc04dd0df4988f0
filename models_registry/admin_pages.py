"""What the registry's admin pages show, ready to print: the version page's tables (metrics by
split against the baselines, the dataset window, the baseline statistics per feature), the
promotion policy's verdict in words, the models list's and a model's page's tables, and a
training run's search tasks.
``admin.py`` keeps the ModelAdmin classes and their actions; nothing here writes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from features.engineering import FEATURE_NAMES
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.selectors import model_version_list
from models_registry.verdict import verdict_text

# Metric rows of the version page, in reading order; any other metric follows alphabetically.
METRIC_ORDER = (
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "log_loss",
    "brier",
    "positive_rate",
    "rows",
)
HIGHER_IS_BETTER = frozenset({"accuracy", "balanced_accuracy", "roc_auc"})
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
METRIC_COLUMNS = (
    ("train", "train"),
    ("validation", "validation"),
    ("majority_class", "majority class"),
    ("always_up", "always up"),
)
BASELINE_QUANTILES = ("p05", "p50", "p95")
BASELINE_COLUMNS = (
    "count",
    "missing",
    "mean",
    "std",
    "min",
    "max",
    *BASELINE_QUANTILES,
    "PSI threshold",
)


def metric_text(value: float | None) -> str:
    """A metric in a list column: four decimals, or a dash."""
    return "—" if value is None else f"{value:.4f}"


def cell_text(value: Any) -> str:
    """One table cell: floats to four decimals, integers as they are, missing as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def size_text(size: int) -> str:
    """A file size readable and exact: ``1.2 MB (1234567 bytes)``."""
    exact = f"{size} bytes"
    return exact if size < 1024 else f"{filesizeformat(size)} ({exact})"


def artifact_rows(version: ModelVersion) -> list[tuple[str, str]]:
    """The artifact's name, checksum and size as (label, value) pairs."""
    return [
        ("name", version.artifact_name or "—"),
        ("sha256", version.artifact_sha256 or "—"),
        ("size", size_text(version.artifact_size)),
    ]


def metrics_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of metric by {train, validation, majority class, always up}, with the comparison of
    validation against the always-up baseline that the promotion policy is about."""
    splits = {key: metrics.get(key) or {} for key in ("train", "validation")}
    baselines = metrics.get("baselines") or {}
    splits.update({key: baselines.get(key) or {} for key in ("majority_class", "always_up")})
    names = {name for split in splits.values() for name in split}
    ordered = [name for name in METRIC_ORDER if name in names]
    ordered += sorted(names - set(METRIC_ORDER))
    rows = []
    for name in ordered:
        validation, always_up = splits["validation"].get(name), splits["always_up"].get(name)
        comparison = ""
        if isinstance(validation, float) and isinstance(always_up, float):
            delta = validation - always_up
            if name in HIGHER_IS_BETTER:
                comparison = f"{delta:+.4f} " + ("better" if delta > 0 else "not better")
            elif name in LOWER_IS_BETTER:
                comparison = f"{delta:+.4f} " + ("better" if delta < 0 else "not better")
        rows.append(
            {
                "name": name,
                "values": [cell_text(splits[key].get(name)) for key, _ in METRIC_COLUMNS],
                "comparison": comparison,
            }
        )
    return rows


def dataset_rows(dataset: dict[str, Any]) -> list[tuple[str, str]]:
    """The dataset window as (label, value) pairs; the fingerprint is shown on its own."""
    per_symbol = dataset.get("rows_per_symbol") or {}
    return [
        ("symbols", ", ".join(dataset.get("symbols") or []) or "—"),
        ("first candle", cell_text(dataset.get("first_candle"))),
        ("last candle", cell_text(dataset.get("last_candle"))),
        ("rows", cell_text(dataset.get("rows"))),
        ("train rows", cell_text(dataset.get("train_rows"))),
        ("validation rows", cell_text(dataset.get("validation_rows"))),
        ("gap rows", cell_text(dataset.get("gap_rows"))),
        ("rows per symbol", ", ".join(f"{k}: {v}" for k, v in per_symbol.items()) or "—"),
        ("window", cell_text(dataset.get("window"))),
        ("horizon", cell_text(dataset.get("horizon"))),
    ]


def _baseline_row(name: str, stats: dict[str, Any], *, model_input: bool) -> dict[str, Any]:
    quantiles = stats.get("quantiles") or {}
    psi = ((stats.get("drift_thresholds") or {}).get("psi") or {}).get("threshold")
    return {
        "name": name,
        "model_input": model_input,
        "values": [
            cell_text(stats.get("count")),
            cell_text(stats.get("missing")),
            cell_text(stats.get("mean")),
            cell_text(stats.get("std")),
            cell_text(stats.get("min")),
            cell_text(stats.get("max")),
            *(cell_text(quantiles.get(q)) for q in BASELINE_QUANTILES),
            cell_text(psi),
        ],
    }


def baseline_table(baseline: dict[str, Any], model_features: list[str]) -> list[dict[str, Any]]:
    """Summary statistics per feature (and of the validation predictions), never the samples,
    edges or proportions: those are for the drift check, and they are large."""
    features = baseline.get("features") or {}
    # PostgreSQL's jsonb does not keep key order: show the features in their canonical order.
    names = [name for name in FEATURE_NAMES if name in features]
    names += sorted(set(features) - set(names))
    rows = [
        _baseline_row(name, features[name] or {}, model_input=name in model_features)
        for name in names
    ]
    if baseline.get("prediction"):
        rows.append(
            _baseline_row(
                "predicted probability (validation)", baseline["prediction"], model_input=False
            )
        )
    return rows


def promotion_note(version: ModelVersion) -> str:
    """What ``PROMOTION_POLICY`` will do with this version, in words."""
    policy = settings.PROMOTION_POLICY
    if version.beats_baseline:
        return (
            f"{version.label} beats the always-up baseline: {verdict_text(version.metrics)}. "
            f"PROMOTION_POLICY={policy} lets it be activated."
        )
    if policy == "enforce":
        return (
            f"{version.label} does not beat the always-up baseline significantly: "
            f"{verdict_text(version.metrics)}. PROMOTION_POLICY=enforce refuses to activate it "
            "unless you force the activation and give a reason; both are recorded on the "
            "activation event."
        )
    return (
        f"{version.label} does not beat the always-up baseline significantly: "
        f"{verdict_text(version.metrics)}. PROMOTION_POLICY=warn lets it be activated; the "
        "warning is recorded on the activation event."
    )


# The models list and a model's page.


def serving_text(model: RegisteredModel, *, champion: bool) -> str:
    """A model's champion (``v3``) or its challengers (``v4, v5``) from
    ``registered_model_list``'s prefetched ``serving_versions``; a dash for none."""
    labels = [v.label for v in model.serving_versions if v.is_active == champion]
    return ", ".join(labels) or "—"


def last_drift_status(model: RegisteredModel) -> str:
    """The status of the model's newest drift verdict, or a dash when never checked.

    Read through the reverse relation monitoring's snapshot rows declare (``drift_snapshots``):
    the registry never imports monitoring, the app above it.
    """
    status = (
        model.drift_snapshots.filter(kind="model")
        .order_by("-event_time", "-id")
        .values_list("status", flat=True)
        .first()
    )
    return status or "—"


def _role(version: ModelVersion) -> str:
    if version.is_active:
        return "champion"
    return "challenger" if version.is_challenger else ""


def model_version_rows(
    model: RegisteredModel, *, back: str, can_manage: bool
) -> list[dict[str, Any]]:
    """A model's versions, newest first, each with its role, figures, page link and the
    lifecycle buttons that apply (each leads to its confirmation page, then back to ``back``)."""
    rows = []
    query = urlencode({"next": back})
    for version in model_version_list(model=model):
        ready = version.status == ModelVersion.Status.READY
        actions: list[tuple[str, str, str]] = []
        if can_manage and ready and not version.is_active:
            actions.append(
                (
                    "Activate",
                    f"{reverse('admin:models_registry_modelversion_activate', args=[version.pk])}"
                    f"?{query}",
                    "registry-activate",
                )
            )
            name, label = (
                ("challenger_remove", "Remove challenger")
                if version.is_challenger
                else ("challenger_add", "Add challenger")
            )
            actions.append(
                (
                    label,
                    f"{reverse(f'admin:models_registry_modelversion_{name}', args=[version.pk])}"
                    f"?{query}",
                    f"registry-{name.replace('_', '-')}",
                )
            )
        rows.append(
            {
                "label": version.label,
                "url": reverse("admin:models_registry_modelversion_change", args=[version.pk]),
                "role": _role(version),
                "status": version.status,
                "created_at": version.created_at,
                "validation_accuracy": metric_text(version.validation_accuracy),
                "baseline_accuracy": metric_text(version.baseline_accuracy),
                "beats_baseline": version.beats_baseline,
                "actions": actions,
            }
        )
    return rows


# A training run's page.


def search_tasks_table(progress: dict[str, Any]) -> str:
    """A search's tasks (a training run's ``progress``) as HTML: done / total, then one row per
    (candidate, fold) with its state, worker, log loss and error; a dash when there are none."""
    if not progress.get("tasks"):
        return "—"
    candidates = {entry["candidate"]: entry for entry in progress.get("candidates", [])}

    def describe(number: int) -> str:
        entry = candidates.get(number, {})
        return f"{number}: {entry.get('type', '?')} {json.dumps(entry.get('params', {}))}"

    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                describe(task["candidate"]),
                task["fold"],
                task["state"],
                task.get("worker") or "—",
                "—" if task.get("log_loss") is None else f"{task['log_loss']:.4f}",
                task.get("error") or "",
            )
            for task in progress["tasks"]
        ),
    )
    return format_html(
        "<p>{} of {} tasks done, {} failed</p><table><thead><tr><th>candidate</th>"
        "<th>fold</th><th>state</th><th>worker</th><th>log loss</th><th>error</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        progress.get("done", 0),
        progress.get("total", 0),
        progress.get("failed", 0),
        rows,
    )
