"""Accepting drifts: the next baseline is the old one with the chosen drifts applied."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aietl.shared.events.schema import Drift

StoredColumn = dict[str, Any]
ATTRIBUTES = {
    "type_change": ("type", "dialect", "canonical_type"),
    "nullability_change": ("nullable",),
    "primary_key_change": ("primary_key",),
}


def apply_drifts(
    baseline: Sequence[StoredColumn], observed: Sequence[StoredColumn], drifts: Iterable[Drift]
) -> list[StoredColumn]:
    """Apply only the accepted drifts; everything else stays as the baseline had it.

    Accepting every drift of a detection yields the observed schema (up to column order)."""
    columns = {column["name"]: dict(column) for column in baseline}
    observed_by_name = {column["name"]: column for column in observed}
    order = [column["name"] for column in baseline]
    for drift in drifts:
        seen = observed_by_name.get(drift.column_name)
        if drift.drift_type == "new_column" and seen is not None:
            columns[drift.column_name] = dict(seen)
            order.append(drift.column_name)
        elif drift.drift_type == "removed_column":
            columns.pop(drift.column_name, None)
        elif drift.drift_type == "renamed_column" and drift.previous_name in columns:
            renamed = columns.pop(drift.previous_name)
            renamed["name"] = drift.column_name
            columns[drift.column_name] = renamed
            order[order.index(drift.previous_name)] = drift.column_name
        elif drift.drift_type in ATTRIBUTES and seen is not None and drift.column_name in columns:
            for attribute in ATTRIBUTES[drift.drift_type]:
                columns[drift.column_name][attribute] = seen[attribute]
    return [columns[name] for name in order if name in columns]
