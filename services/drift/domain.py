"""Pure drift logic: no I/O, no framework."""

from __future__ import annotations

import hashlib
import json

from shared.events.schema import ObservedColumn


def schema_hash(columns: list[ObservedColumn]) -> str:
    """Content hash of a table schema; column order is not part of it (order alone is not drift)."""
    canonical = sorted(
        (column.name, column.type.strip().lower(), column.nullable, column.primary_key) for column in columns
    )
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
