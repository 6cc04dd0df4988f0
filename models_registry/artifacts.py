"""Model artifacts through Django's storage API: atomic writes, sha256-checked reads.

The ``artifacts`` storage alias (``STORAGES["artifacts"]``) is a filesystem folder by default; an
S3 or shared-volume backend is configuration only. On storages with local paths a file is written
under a temporary name and renamed into place, so a reader never sees half a model; object stores
(S3 and the like) make a PUT visible only once it is complete, which gives the same guarantee.

joblib unpickles arbitrary code, so bytes are checked against the sha256 recorded in the
``ModelVersion`` row *before* joblib ever sees them.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from models_registry.errors import ArtifactInvalid

MODELS_PREFIX = "models"


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    sha256: str
    size: int


def artifact_storage() -> Storage:
    return storages["artifacts"]


def serialize_model(model: Any) -> bytes:
    """joblib bytes of a fitted model (compressed: a forest shrinks several-fold)."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_write(
    *, data: bytes, prefix: str = MODELS_PREFIX, suffix: str = ".joblib"
) -> StoredArtifact:
    """Store ``data`` under a new unique name, atomically; return its name, sha256 and size.

    ``prefix`` / ``suffix``: the folder and extension (a search's candles use ``searches``).
    """
    storage = artifact_storage()
    name = f"{prefix}/{uuid.uuid4().hex}{suffix}"
    try:
        final_path = storage.path(name)
    except NotImplementedError:
        saved = storage.save(name, ContentFile(data))
        return StoredArtifact(name=saved, sha256=sha256_hex(data), size=len(data))
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(final)
    return StoredArtifact(name=name, sha256=sha256_hex(data), size=len(data))


def artifact_read_verified(*, name: str, sha256: str) -> bytes:
    """The artifact's bytes, after checking they hash to ``sha256``; else ``ArtifactInvalid``."""
    storage = artifact_storage()
    if not name:
        raise ArtifactInvalid("The version has no artifact.", details={"artifact": name})
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, OSError) as exc:
        raise ArtifactInvalid(
            f"The model artifact {name} is missing.", details={"artifact": name}
        ) from exc
    actual = sha256_hex(data)
    if actual != sha256:
        raise ArtifactInvalid(
            f"The model artifact {name} has been altered: its sha256 does not match the registry.",
            details={"artifact": name, "expected_sha256": sha256, "actual_sha256": actual},
        )
    return data


def artifact_load(*, name: str, sha256: str) -> Any:
    """Verify, then unpickle, a model artifact."""
    data = artifact_read_verified(name=name, sha256=sha256)
    return joblib.load(io.BytesIO(data))


def artifact_delete(*, name: str) -> None:
    storage = artifact_storage()
    if name and storage.exists(name):
        storage.delete(name)
