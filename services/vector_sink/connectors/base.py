"""The one interface every vector store implements (the seed's `vector_db_base`).

Calls are synchronous (the store clients are); the service runs them in a worker thread. A
DataFrame passed to `write_data` has an `id` column, a `text` and/or `embedding` column, and one
column per metadata field; rows without an embedding are embedded with the connector's model.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from aietl.services.vector_sink.domain.filters import FilterNode, parse_filter
from aietl.services.vector_sink.domain.model import (
    CollectionSpec,
    CollectionStats,
    Hit,
    MetadataValue,
    WriteMode,
)
from aietl.services.vector_sink.embeddings import Embedder

WRITE_MODES: tuple[WriteMode, ...] = ("append", "upsert", "overwrite")


class UnsupportedOperation(NotImplementedError):
    """The store cannot do this (e.g. hybrid search on a dense-only index)."""


class CollectionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class VectorRecord:
    id: str
    vector: np.ndarray  # float32; pymilvus takes arrays as they are, about twice as fast as lists
    text: str
    metadata: dict[str, MetadataValue]


def _clean(value: Any) -> MetadataValue:
    """pandas gives numpy scalars and NaN; stores want plain JSON values."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class VectorStore(ABC):
    kind: ClassVar[str]
    supports_hybrid: ClassVar[bool] = False

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder
        self._lock = threading.RLock()  # clients are not all thread-safe; calls come from a thread pool
        self._specs: dict[str, CollectionSpec] = {}

    # --- lifecycle ---
    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def ping(self) -> None:
        """Raise if the store does not answer (test-connection, readiness)."""

    # --- collections ---
    @abstractmethod
    def ensure_collection(self, spec: CollectionSpec) -> CollectionSpec:
        """Create the collection if missing; return the spec in force (an existing one wins)."""

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def stats(self, name: str) -> CollectionStats: ...

    # --- writes ---
    def write_data(
        self, data: pd.DataFrame, table_name: str, mode: WriteMode = "upsert", *, flush: bool = True
    ) -> int:
        """Write rows: `append` inserts, `upsert` replaces same ids, `overwrite` empties the collection.

        `flush=False` leaves `flush` to the caller, so a run of many batches flushes once.
        """
        if mode not in WRITE_MODES:
            raise ValueError(f"mode must be one of {WRITE_MODES}, got {mode!r}")
        records = self._records(data, table_name)
        with self._lock:
            if mode == "overwrite":
                spec = self._spec(table_name)
                self.drop_collection(table_name)
                self.ensure_collection(spec)
            if records:
                self._write(table_name, records, upsert=mode == "upsert")
            if flush:
                self.flush(table_name)
        return len(records)

    def flush(self, collection: str) -> None:
        """Bring earlier writes and deletes into the store's search-ready form (Milvus: sealed
        segments); they are durable and searchable before it. Stores that need nothing skip it."""
        return None

    def _records(self, data: pd.DataFrame, table_name: str) -> list[VectorRecord]:
        if "text" not in data.columns and "embedding" not in data.columns:
            raise ValueError("the DataFrame needs a `text` or an `embedding` column")
        dimension = self._spec(table_name).dimension
        texts = data["text"].fillna("").astype(str).tolist() if "text" in data.columns else [""] * len(data)
        vectors: list[Any] = data["embedding"].tolist() if "embedding" in data.columns else [None] * len(data)
        missing = [i for i, vector in enumerate(vectors) if vector is None or not len(vector)]
        if missing:
            if self.embedder is None:
                raise ValueError("rows without `embedding` and no embedding model configured")
            computed = self.embedder.embed([texts[i] for i in missing])
            for row, vector in zip(missing, computed, strict=True):
                vectors[row] = vector
        ids = data["id"].astype(str).tolist() if "id" in data.columns else [str(uuid.uuid4()) for _ in texts]
        meta_columns = [c for c in data.columns if c not in ("id", "text", "embedding")]
        meta_rows = data[meta_columns].to_dict("records") if meta_columns else [{}] * len(data)
        records = []
        for id_, text, vector, meta in zip(ids, texts, vectors, meta_rows, strict=True):
            array = np.asarray(vector, dtype=np.float32).reshape(-1)
            if array.shape[0] != dimension:
                raise ValueError(f"row {id_!r}: embedding dimension {array.shape[0]} != {dimension}")
            records.append(VectorRecord(id_, array, text, {str(k): _clean(v) for k, v in meta.items()}))
        return records

    @abstractmethod
    def _write(self, collection: str, records: list[VectorRecord], *, upsert: bool) -> None: ...

    @abstractmethod
    def delete(
        self, collection: str, ids: list[str] | None = None, filter: dict[str, Any] | None = None
    ) -> None:
        """Delete by ids, or by a metadata filter (one of the two)."""

    # --- reads ---
    def query(
        self,
        collection: str,
        vector: list[float] | None = None,
        text: str | None = None,
        top_k: int = 10,
        filter: dict[str, Any] | None = None,
        hybrid: bool = False,
    ) -> list[Hit]:
        """Nearest chunks to a vector or a text; `hybrid` adds keyword (BM25) relevance where supported."""
        if hybrid and not self.supports_hybrid:
            raise UnsupportedOperation(f"{self.kind} connector: hybrid search is not supported")
        if hybrid and not text:
            raise ValueError("hybrid search needs a text `query`")
        if vector is None:
            if not text:
                raise ValueError("give a `vector` or a text `query`")
            if self.embedder is None:
                raise ValueError("a text query needs an embedding model")
            vector = [float(x) for x in self.embedder.embed([text])[0]]
        dimension = self._spec(collection).dimension
        if len(vector) != dimension:
            raise ValueError(f"`vector` has dimension {len(vector)}, the collection has {dimension}")
        with self._lock:
            return self._search(collection, vector, text if hybrid else None, top_k, parse_filter(filter))

    @abstractmethod
    def _search(
        self,
        collection: str,
        vector: list[float],
        keywords: str | None,
        top_k: int,
        filter: FilterNode | None,
    ) -> list[Hit]: ...

    @abstractmethod
    def document_ids(self, collection: str, doc_id: str) -> set[str]:
        """Every id the store holds for a document (to prove there is nothing stale or orphaned)."""

    @abstractmethod
    def _describe(self, name: str) -> CollectionSpec | None:
        """The spec of an existing collection as the store reports it; None when there is none."""

    def _spec(self, name: str) -> CollectionSpec:
        if name not in self._specs:
            with self._lock:
                spec = self._describe(name)
            if spec is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            self._specs[name] = spec
        return self._specs[name]
