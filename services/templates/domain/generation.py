"""From control-table rows to template configs, and from accepted drifts to new column mappings."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.templates.domain.model import ConfigProblem, Pattern
from shared.events.schema import Drift

WATERMARK_FIELD: dict[str, str] = {
    "incremental": "watermark_column",
    "cdc": "sequence_column",
    "scd2": "sequence_column",
}


@dataclass(frozen=True)
class ControlSpec:
    """A control-table row as the domain sees it (no ORM)."""

    entry_id: str
    source_system: str
    source_object: str
    target_system: str
    target_object: str
    template_id: str
    load_type: str
    watermark_column: str | None
    keys: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def pipeline_name(self) -> str:
        return f"{self.target_system}.{self.target_object}"


def table_ref(name: str) -> dict[str, str]:
    """`schema.table` or `table` as the built-in templates' table object."""
    schema, _, table = name.rpartition(".")
    return {"schema": schema, "name": table} if schema else {"name": table}


def entry_config(entry: ControlSpec, pattern: Pattern) -> dict[str, Any]:
    """The entry's own `config` completed by its columns: source, target, keys, watermark."""
    config = copy.deepcopy(entry.config)
    if pattern != "streaming":
        config["source"] = table_ref(entry.source_object)
    config["target"] = table_ref(entry.target_object)
    if entry.keys:
        config["keys"] = list(entry.keys)
    if entry.watermark_column and pattern in WATERMARK_FIELD:
        config[WATERMARK_FIELD[pattern]] = entry.watermark_column
    return config


def entry_problems(entry: ControlSpec, pattern: Pattern) -> list[ConfigProblem]:
    """Control-row problems the template schema cannot see."""
    if entry.load_type != pattern:
        return [
            ConfigProblem(
                "/load_type",
                f"load_type {entry.load_type!r} does not match template {entry.template_id!r} ({pattern})",
            )
        ]
    return []


class CannotAdapt(ValueError):
    """The drift removes something the pipeline cannot run without (a key, the watermark)."""


def _referenced(config: dict[str, Any]) -> set[str]:
    names = set(config.get("keys") or [])
    names.update(config[name] for name in ("watermark_column", "sequence_column") if config.get(name))
    return names


def adapt_config(config: dict[str, Any], drifts: Iterable[Drift]) -> dict[str, Any]:
    """The column mapping after accepted drifts: renames follow the source, auto-included new
    columns are mapped (typed when a target type is suggested), removed columns are unmapped."""
    adapted = copy.deepcopy(config)
    columns: list[dict[str, Any]] = adapted.get("columns") or []
    for drift in drifts:
        if drift.drift_type == "renamed_column" and drift.previous_name:
            for column in columns:
                if column.get("source", column.get("name")) == drift.previous_name:
                    column["source"] = drift.column_name
        elif drift.drift_type == "new_column":
            mapping = drift.suggested_mapping
            if mapping is None or not mapping.auto_include:
                continue
            name = mapping.target_column or drift.column_name
            if any(column.get("name") == name for column in columns):
                continue
            column = {"name": name, "source": mapping.source_column or drift.column_name}
            if mapping.target_type:
                column["type"] = mapping.target_type
            columns.append(column)
        elif drift.drift_type == "removed_column":
            gone = [c for c in columns if c.get("source", c.get("name")) == drift.column_name]
            if any(column.get("name") in _referenced(adapted) for column in gone):
                raise CannotAdapt(f"column {drift.column_name!r} is a key or watermark of the pipeline")
            columns[:] = [column for column in columns if column not in gone]
        elif (
            drift.drift_type == "type_change"
            and drift.suggested_mapping
            and drift.suggested_mapping.target_type
        ):
            for column in columns:
                if column.get("source", column.get("name")) == drift.column_name and "type" in column:
                    column["type"] = drift.suggested_mapping.target_type
    return adapted
