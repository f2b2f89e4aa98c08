"""Contracts of the schema-drift loop: `schema.observed` in, `drift.detected` out."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field, model_validator

from aietl.shared.events.base import Contract, Event, Name, Topic

Dialect = Literal["postgres", "mysql", "clickhouse", "sqlite", "generic"]
DriftType = Literal[
    "new_column",
    "removed_column",
    "renamed_column",
    "type_change",
    "nullability_change",
    "primary_key_change",
]
Severity = Literal["low", "medium", "high", "critical"]
Strategy = Literal["auto_adapt", "suggest", "alert", "fail"]
SampleValue = str | int | float | bool | None


class ObservedColumn(Contract):
    name: Name
    type: Name = Field(description="The type as the source reports it, in the source's dialect.")
    nullable: bool = True
    primary_key: bool = False
    sample_values: list[SampleValue] = Field(default_factory=list, max_length=100)
    distinct_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Distinct values / rows of a sample (evidence for renames)."
    )
    null_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="NULL values / rows of a sample (evidence for renames)."
    )


class SchemaObserved(Event):
    """A table's columns as some observer saw them; column order is kept but is not drift."""

    topic: ClassVar[str] = Topic.SCHEMA_OBSERVED

    connector_id: Name
    table_name: Name
    dialect: Dialect = "generic"
    columns: list[ObservedColumn] = Field(min_length=0, max_length=10_000)
    observed_by: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _unique_column_names(self) -> SchemaObserved:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ValueError(f"duplicate column name {column.name!r}")
            seen.add(column.name)
        return self

    def partition_key(self) -> str:
        return f"{self.connector_id}/{self.table_name}"


class SuggestedMapping(Contract):
    auto_include: bool
    source_column: str | None = None
    target_column: str | None = None
    target_type: str | None = None
    transformation_logic: str | None = Field(
        default=None, description="A SQL expression (CAST or rename) valid in `dialect`."
    )
    dialect: Dialect = "generic"


class Evidence(Contract):
    """One piece of what a rename decision rested on: a feature of the pair and its share of the
    decision (log-odds; positive speaks for a rename, negative against)."""

    kind: str
    weight: float


class Drift(Contract):
    drift_type: DriftType
    column_name: str
    previous_name: str | None = None
    old_type: str | None = None
    new_type: str | None = None
    old_nullable: bool | None = None
    new_nullable: bool | None = None
    change_class: Literal["widening", "narrowing", "incompatible"] | None = None
    severity: Severity
    confidence_score: float = Field(ge=0.0, le=1.0)
    suggested_mapping: SuggestedMapping | None = None
    description: str = ""
    evidence: list[Evidence] = Field(
        default_factory=list,
        description="For a rename, or a new/removed column that could have been one: what decided it.",
    )


class DriftDetected(Event):
    """The outcome of comparing an observation with the baseline, and what was decided."""

    topic: ClassVar[str] = Topic.DRIFT_DETECTED

    connector_id: Name
    table_name: Name
    observed_event_id: UUID
    baseline_version: int = Field(ge=1)
    new_version: int | None = Field(default=None, ge=1, description="Set when the change was accepted.")
    before_hash: str
    after_hash: str
    drifts: list[Drift]
    strategy: Strategy
    status: Literal["adapted", "pending", "alerted", "blocked"]

    def partition_key(self) -> str:
        return f"{self.connector_id}/{self.table_name}"
