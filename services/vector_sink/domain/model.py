"""What the vector sink stores and answers: documents, chunks, collections, hits, and its errors.

No I/O. Metadata field names are checked here because collection schemas, documents and filters all
name fields the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Metric = Literal["cosine", "l2", "ip"]
WriteMode = Literal["append", "upsert", "overwrite"]
FieldType = Literal["str", "int", "float", "bool"]
MetadataValue = str | int | float | bool | None

RESERVED_FIELDS = frozenset({"id", "text", "embedding", "sparse"})
ENRICHED_FIELDS = ("doc_id", "chunk_index", "content_hash", "source", "author", "timestamp")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RejectedDocument(ValueError):
    """A document that can never be stored as sent (bad dimension, too large, nothing to embed)."""


class FilterError(ValueError):
    """A metadata filter that is not valid; the message names the offending part."""


class ConnectorConfigError(ValueError):
    """A connector configuration that cannot work; the message is ours, never a remote server's."""


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection must look like: vector size, distance, and typed metadata fields to index."""

    name: str
    dimension: int
    metric: Metric = "cosine"
    metadata_schema: dict[str, FieldType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.dimension <= 8_192:
            raise ValueError(f"dimension must be within 1..8192, got {self.dimension}")
        for name in self.metadata_schema:
            validate_field_name(name)


@dataclass(frozen=True)
class Document:
    """A document to store (text or a ready embedding) or to remove."""

    doc_id: str
    text: str | None = None
    embedding: Sequence[float] | None = None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    source: str | None = None
    author: str | None = None
    created_at: datetime | None = None
    operation: Literal["upsert", "delete"] = "upsert"


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    index: int
    text: str
    content_hash: str
    metadata: dict[str, MetadataValue]
    embedding: tuple[float, ...] | None = None  # set when the document came with its own vector


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CollectionStats:
    name: str
    count: int
    dimension: int | None
    metric: str | None


def validate_field_name(name: str) -> str:
    if not FIELD_NAME.fullmatch(name):
        raise FilterError(f"field name {name!r} must match {FIELD_NAME.pattern}")
    return name
