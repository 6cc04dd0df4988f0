"""The stored verdict of a version against always-up, read back for people and the API.

Pure functions of a version's ``metrics`` JSON (no Django import), shared by the activation
warning, the admin's version page, ``/models/{v}`` and the dashboard's version card. A version
trained before walk-forward existed has no verdict: everything here then answers None (or the old
accuracy comparison, in words).
"""

from __future__ import annotations

from typing import Any


def stored_verdict(metrics: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(validation method, ``vs_always_up``) of ``metrics``, or None when it holds none."""
    for method in ("walk_forward", "holdout"):
        section = (metrics or {}).get(method) or {}
        verdict = section.get("vs_always_up")
        if isinstance(verdict, dict) and verdict.get("log_loss_difference"):
            return method, verdict
    return None


def walk_forward_summary(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The verdict for ``/models/{v}``: method, folds, both differences with their intervals,
    ``significant`` and the sign convention; None for a version without one."""
    found = stored_verdict(metrics)
    if found is None:
        return None
    method, verdict = found
    keys = ("estimate", "interval", "verdict", "rows_needed", "block_length", "resamples")
    folds = ((metrics or {}).get("walk_forward") or {}).get("folds") or []
    return {
        "method": method,
        "folds": len(folds) if method == "walk_forward" else None,
        "significant": bool(verdict.get("significant")),
        "sign": verdict.get("sign", ""),
        "log_loss_difference": {k: verdict["log_loss_difference"].get(k) for k in keys},
        "accuracy_difference": {k: (verdict.get("accuracy_difference") or {}).get(k) for k in keys},
    }


def _signed(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:+.{digits}f}"


def difference_text(entry: dict[str, Any] | None, *, points: bool = False) -> str:
    """``-0.0021 [-0.0040, -0.0003]`` (or in accuracy points with ``points``)."""
    if not entry:
        return "—"
    low, high = entry.get("interval") or (None, None)
    if points:
        scale = 100.0

        def fmt(value: float | None) -> str:
            return "—" if value is None else f"{value * scale:+.2f}"

        return f"{fmt(entry.get('estimate'))} pts [{fmt(low)}, {fmt(high)}]"
    return f"{_signed(entry.get('estimate'))} [{_signed(low)}, {_signed(high)}]"


def verdict_text(metrics: dict[str, Any] | None) -> str:
    """One sentence: the log-loss and accuracy differences with their 95% intervals."""
    found = stored_verdict(metrics)
    if found is None:
        validation = (metrics or {}).get("validation") or {}
        baseline = ((metrics or {}).get("baselines") or {}).get("always_up") or {}
        accuracy, base = validation.get("accuracy"), baseline.get("accuracy")
        return (
            "no bootstrap verdict stored; validation accuracy "
            f"{'—' if accuracy is None else round(accuracy, 4)} vs always-up "
            f"{'—' if base is None else round(base, 4)}"
        )
    method, verdict = found
    name = "walk-forward out-of-fold" if method == "walk_forward" else "hold-out"
    log_loss = verdict["log_loss_difference"]
    accuracy = verdict.get("accuracy_difference")
    needed = log_loss.get("rows_needed")
    tail = ""
    if log_loss.get("verdict") == "undecided":
        tail = (
            "; no paired count decides it at this estimate"
            if needed is None
            else f"; about {needed} more paired rows would be needed to decide it "
            f"({'for' if (log_loss.get('estimate') or 0) < 0 else 'against'} the model, "
            "if the estimate held)"
        )
    return (
        f"{name} log loss minus always-up {difference_text(log_loss)} "
        f"({log_loss.get('verdict')}), accuracy {difference_text(accuracy, points=True)} "
        f"(95% block bootstrap over time){tail}"
    )


def fold_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per-fold figures of ``metrics.walk_forward`` ready to print, plus a pooled row."""
    walk = (metrics or {}).get("walk_forward") or {}
    rows = []

    def line(label: str, dates: str, entry: dict[str, Any]) -> dict[str, Any]:
        model = entry.get("model") or {}
        up = entry.get("always_up") or {}
        majority = entry.get("majority_class") or {}

        def num(value: Any, digits: int = 4) -> str:
            return "—" if value is None else f"{value:.{digits}f}"

        return {
            "label": label,
            "dates": dates,
            "rows": model.get("rows", "—"),
            "values": [
                num(model.get("accuracy")),
                num(model.get("balanced_accuracy")),
                num(model.get("roc_auc")),
                num(model.get("log_loss")),
                num(model.get("brier")),
                num(up.get("accuracy")),
                num(up.get("log_loss")),
                num(majority.get("accuracy")),
            ],
        }

    for entry in walk.get("folds") or []:
        dates = f"{entry.get('test_start')} … {entry.get('test_end')}"
        label = f"fold {entry.get('fold', 0) + 1} (train {entry.get('train_rows')} rows)"
        rows.append(line(label, dates, entry))
    if walk.get("pooled"):
        rows.append(line("pooled out of fold", "", walk["pooled"]))
    return rows


FOLD_COLUMNS: tuple[str, ...] = (
    "accuracy",
    "balanced acc.",
    "ROC AUC",
    "log loss",
    "Brier",
    "always-up acc.",
    "always-up log loss",
    "majority acc.",
)


def calibration_rows(metrics: dict[str, Any] | None) -> list[dict[str, str]]:
    """``metrics.calibration`` ready to print: bin, probability range, rows, mean, realised."""
    return [
        {
            "bin": str(row.get("bin", 0) + 1),
            "range": f"{row.get('low', 0):.3f} to {row.get('high', 0):.3f}",
            "rows": str(row.get("rows")),
            "mean_predicted": f"{row.get('mean_predicted', 0):.3f}",
            "realised_up_rate": f"{row.get('realised_up_rate', 0):.3f}",
        }
        for row in (metrics or {}).get("calibration") or []
    ]
