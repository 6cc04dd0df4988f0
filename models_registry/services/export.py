"""Export the registry to JSON files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from models_registry.models import ModelVersion, TrainingRun
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.serializers import TrainingRunSerializer


def _write_json_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, indent=2, sort_keys=True, default=str)
        stream.write("\n")
    Path(temporary).replace(path)


def registry_export(*, output_dir: Path) -> list[Path]:
    """Write ``registry.json`` (active version; every version with its created-at, metrics and
    dataset window) and ``training_history.json`` (every training run). Returns both paths."""
    versions = list(ModelVersion.objects.filter(model__name=DEFAULT_MODEL_NAME).order_by("version"))
    active = next((v.label for v in versions if v.is_active), None)
    registry = {
        "active_version": active,
        "versions": [
            {
                "version": version.label,
                "status": version.status,
                "is_active": version.is_active,
                "created_at": version.created_at.isoformat(),
                "activated_at": version.activated_at.isoformat() if version.activated_at else None,
                "metrics": version.metrics,
                "dataset": version.dataset,
                "feature_spec": version.feature_spec,
                "artifact": {
                    "name": version.artifact_name,
                    "sha256": version.artifact_sha256,
                    "size": version.artifact_size,
                },
            }
            for version in versions
        ],
    }
    runs = TrainingRun.objects.select_related("model_version", "requested_by").order_by("pk")
    history = {"training_runs": TrainingRunSerializer(runs, many=True).data}
    registry_path = output_dir / "registry.json"
    history_path = output_dir / "training_history.json"
    _write_json_atomically(registry_path, registry)
    _write_json_atomically(history_path, history)
    return [registry_path, history_path]
