"""Table schemas as the domain sees them: parsed, normalised, hashable columns."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aietl.services.drift.domain.types import SqlType, parse_type
from aietl.shared.events.schema import Dialect, ObservedColumn, SampleValue

MAX_KEPT_SAMPLES = 20


class InvalidSchemaError(ValueError):
    """A schema the domain cannot work with; `field` names the offending input (for 422s and DLQs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # as the source spelled it, in `dialect`
    dialect: Dialect
    sql_type: SqlType
    nullable: bool
    primary_key: bool
    position: int
    samples: tuple[SampleValue, ...] = ()
    distinct_ratio: float | None = None
    null_ratio: float | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON kept in a baseline version."""
        return {
            "name": self.name,
            "type": self.type,
            "dialect": self.dialect,
            "canonical_type": self.sql_type.canonical,
            "nullable": self.nullable,
            "primary_key": self.primary_key,
            "sample_values": list(self.samples[:MAX_KEPT_SAMPLES]),
            "distinct_ratio": self.distinct_ratio,
            "null_ratio": self.null_ratio,
        }


def columns_of(observed: Sequence[ObservedColumn], dialect: Dialect) -> list[Column]:
    """Parse observed columns; duplicate names raise `InvalidSchemaError` (types never do)."""
    seen: set[str] = set()
    columns: list[Column] = []
    for index, column in enumerate(observed):
        if column.name in seen:
            raise InvalidSchemaError(f"columns[{index}].name", f"duplicate column name {column.name!r}")
        seen.add(column.name)
        parsed = parse_type(column.type, dialect)  # never fails: an unknown type is opaque
        columns.append(
            Column(
                name=column.name,
                type=column.type,
                dialect=dialect,
                sql_type=parsed.sql_type,
                nullable=column.nullable or parsed.nullable_wrapper,
                primary_key=column.primary_key,
                position=index,
                samples=tuple(column.sample_values),
                distinct_ratio=column.distinct_ratio,
                null_ratio=column.null_ratio,
            )
        )
    return columns


def columns_from_stored(
    stored: Iterable[Mapping[str, Any]], default_dialect: Dialect = "generic"
) -> list[Column]:
    """Rebuild the columns of a baseline version (written by `Column.stored`)."""
    columns = []
    for index, item in enumerate(stored):
        dialect = item.get("dialect", default_dialect)
        columns.append(
            Column(
                name=item["name"],
                type=item["type"],
                dialect=dialect,
                sql_type=parse_type(item["type"], dialect).sql_type,
                nullable=item.get("nullable", True),
                primary_key=item.get("primary_key", False),
                position=index,
                samples=tuple(item.get("sample_values", ())),
                distinct_ratio=item.get("distinct_ratio"),
                null_ratio=item.get("null_ratio"),
            )
        )
    return columns


def schema_hash(columns: Iterable[Column]) -> str:
    """Content hash over normalised types; column order and dialect spelling are not part of it."""
    canonical = sorted((c.name, c.sql_type.canonical, c.nullable, c.primary_key) for c in columns)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
