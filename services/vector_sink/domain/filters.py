"""The metadata filter language (Pinecone-style operators), parsed into a bounded tree. No I/O.

Each connector compiles the tree into its store's own query language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from aietl.services.vector_sink.domain.model import FilterError, validate_field_name

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
# A filter is user input compiled into a store's query language: bounded in every direction.
MAX_FILTER_DEPTH = 8  # nested $and/$or
MAX_FILTER_CONDITIONS = 256
MAX_FILTER_LIST = 1_024  # values of one $in/$nin
MAX_FILTER_TEXT = 1_024  # characters of one value


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Exists:
    field: str
    exists: bool


@dataclass(frozen=True)
class Junction:
    op: Literal["$and", "$or"]
    parts: tuple[FilterNode, ...]


FilterNode = Compare | Exists | Junction


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, str) and len(value) > MAX_FILTER_TEXT:
        raise FilterError(f"{where}: a value longer than {MAX_FILTER_TEXT} characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{where}: value must be a finite number")
    if isinstance(value, str | int | float | bool):
        return value
    raise FilterError(f"{where}: value must be a string, number or boolean")


def _field_conditions(name: str, condition: Any) -> list[FilterNode]:
    validate_field_name(name)
    if not isinstance(condition, dict):
        return [Compare(name, "$eq", _scalar(condition, name))]
    if not condition:
        raise FilterError(f"{name}: empty condition")
    nodes: list[FilterNode] = []
    for op, value in condition.items():
        where = f"{name}.{op}"
        if op == "$exists":
            if not isinstance(value, bool):
                raise FilterError(f"{where}: expects true or false")
            nodes.append(Exists(name, value))
        elif op in ("$in", "$nin"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{where}: expects a non-empty list")
            if len(value) > MAX_FILTER_LIST:
                raise FilterError(f"{where}: more than {MAX_FILTER_LIST} values")
            nodes.append(Compare(name, op, tuple(_scalar(v, where) for v in value)))
        elif op in COMPARISONS:
            scalar = _scalar(value, where)
            if op in ("$gt", "$gte", "$lt", "$lte") and isinstance(scalar, bool):
                raise FilterError(f"{where}: expects a number or string")
            nodes.append(Compare(name, op, scalar))
        else:
            raise FilterError(f"{where}: unknown operator")
    return nodes


def parse_filter(spec: dict[str, Any] | None) -> FilterNode | None:
    """Parse Pinecone-style metadata filters (`{"year": {"$gte": 2020}, "$or": [...]}`), refusing
    any deeper than `MAX_FILTER_DEPTH` or with more than `MAX_FILTER_CONDITIONS` conditions."""
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise FilterError("filter must be an object")
    return _parse_filter(spec, 1, [0])


def _parse_filter(spec: dict[str, Any], depth: int, conditions: list[int]) -> FilterNode | None:
    """`conditions` counts the conditions parsed so far (shared by the whole filter)."""
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"nested deeper than {MAX_FILTER_DEPTH} levels")
    nodes: list[FilterNode] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key}: expects a non-empty list of filters")
            conditions[0] += len(value)
            if conditions[0] > MAX_FILTER_CONDITIONS:
                raise FilterError(f"more than {MAX_FILTER_CONDITIONS} conditions")
            parts = []
            for item in value:
                if not isinstance(item, dict):
                    raise FilterError(f"{key}: every element must be an object")
                node = _parse_filter(item, depth + 1, conditions) if item else None
                if node is not None:
                    parts.append(node)
            nodes.append(Junction(key, tuple(parts)))  # type: ignore[arg-type]
        elif key.startswith("$"):
            raise FilterError(f"{key}: unknown operator")
        else:
            found = _field_conditions(key, value)
            conditions[0] += len(found)
            nodes.extend(found)
        if conditions[0] > MAX_FILTER_CONDITIONS:
            raise FilterError(f"more than {MAX_FILTER_CONDITIONS} conditions")
    return nodes[0] if len(nodes) == 1 else Junction("$and", tuple(nodes))
