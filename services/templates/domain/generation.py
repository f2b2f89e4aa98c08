"""From control-table rows to template configs, and from accepted drifts to new column mappings."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aietl.services.templates.domain.model import ConfigProblem, Pattern
from aietl.shared.events.schema import Drift

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


def _accepts(schema: dict[str, Any], field: str) -> bool:
    """The template's config schema takes `field`: it declares it, or allows other properties."""
    return field in (schema.get("properties") or {}) or schema.get("additionalProperties", True) is not False


def entry_config(entry: ControlSpec, pattern: Pattern, schema: dict[str, Any]) -> dict[str, Any]:
    """The entry's own `config` completed by its columns, as far as the template's schema takes
    them: `source`/`target` table objects and `keys` (the built-ins' shape), `source_table`/
    `target_table` names (the specification's templates), the watermark or sequence column."""
    derived: dict[str, Any] = {}
    if pattern != "streaming":
        derived["source"] = table_ref(entry.source_object)
        derived["source_table"] = entry.source_object
    derived["target"] = table_ref(entry.target_object)
    derived["target_table"] = entry.target_object
    if entry.keys:
        derived["keys"] = list(entry.keys)
    if entry.watermark_column and pattern in WATERMARK_FIELD:
        derived[WATERMARK_FIELD[pattern]] = entry.watermark_column
    config = copy.deepcopy(entry.config)
    config.update({name: value for name, value in derived.items() if _accepts(schema, name)})
    return config


RESERVED_NAMES = frozenset({"dialect", "config", "sources", "range", "namespace"})


@dataclass(frozen=True)
class PipelineNames:
    """The pipeline facts a template sees beside its config (sent to the render child with it)."""

    pipeline_name: str
    source_object: str | None = None
    target_object: str | None = None

    def variables(self, config: dict[str, Any]) -> dict[str, Any]:
        return template_variables(
            config,
            pipeline_name=self.pipeline_name,
            source_object=self.source_object,
            target_object=self.target_object,
        )


def template_variables(
    config: dict[str, Any], *, pipeline_name: str, source_object: str | None, target_object: str | None
) -> dict[str, Any]:
    """Top-level names a template may use besides `config`: the pipeline's `pipeline_name`,
    `source_table` and `target_table` (default: a table named after the pipeline), then every config
    key that is a plain name (the specification's templates write `{{ source_table }}`)."""
    names: dict[str, Any] = {"pipeline_name": pipeline_name, "target_table": target_object or pipeline_name}
    if source_object:
        names["source_table"] = source_object
    names.update(
        {key: value for key, value in config.items() if key.isidentifier() and not key.startswith("_")}
    )
    return {key: value for key, value in names.items() if key not in RESERVED_NAMES}


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
