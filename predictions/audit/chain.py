"""The audit file's line format and hash chain. Pure: no Django, no I/O.

One line per committed PredictionRecord, in id order::

    {<the row's canonical fields>, "prev_hash": "<64 hex>", "hash": "<64 hex>"}

- the canonical JSON of a row is ``json.dumps(row, sort_keys=True, separators=(",", ":"),
  ensure_ascii=True, allow_nan=False)`` of its fields (``predictions.serializers.
  audit_fields``), without ``prev_hash`` and ``hash``;
- ``hash = sha256_hex(prev_hash + canonical_json(row))`` over the UTF-8 bytes, where
  ``prev_hash`` is the previous line's ``hash``, or for the very first row the genesis hash
  (64 zeros), or after retention the chain hash stored in the newest seal;
- the line itself is the canonical JSON of the row plus those two keys, and a newline.

Changing, removing or reordering any row changes every hash after it, so a verifier that
recomputes the chain from the database names the first row that differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
CHAIN_KEYS = ("prev_hash", "hash")


def canonical_json(row: Mapping[str, Any]) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps(
        row, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def chain_hash(previous: str, row: Mapping[str, Any]) -> str:
    """``sha256(previous hash + canonical row JSON)`` as 64 lowercase hex digits."""
    return hashlib.sha256((previous + canonical_json(row)).encode("utf-8")).hexdigest()


def chain_lines(previous: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[bytes, str]]:
    """Each row's line (bytes, newline included) and its hash, chained from ``previous``."""
    for row in rows:
        digest = chain_hash(previous, row)
        yield (
            (canonical_json({**row, "prev_hash": previous, "hash": digest}) + "\n").encode(),
            digest,
        )
        previous = digest


@dataclass(frozen=True)
class AuditLine:
    """One parsed line of the file."""

    row: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def request_id(self) -> str:
        return str(self.row.get("request_id", ""))

    @property
    def intact(self) -> bool:
        """Whether the line's own content still gives its hash (not edited in the file)."""
        return chain_hash(self.prev_hash, self.row) == self.hash


class MalformedLine(ValueError):
    """A line that is not a chained audit line (not JSON, or no id / hashes)."""


def parse_line(text: str | bytes) -> AuditLine:
    """Parse one line; ``MalformedLine`` if it is not one this module wrote."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MalformedLine(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in CHAIN_KEYS):
        raise MalformedLine("no prev_hash / hash: not a chained audit line")
    if not isinstance(data.get("id"), int):
        raise MalformedLine("no integer id")
    prev_hash, digest = data.pop("prev_hash"), data.pop("hash")
    return AuditLine(row=data, prev_hash=prev_hash, hash=digest)
