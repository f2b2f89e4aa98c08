"""Pinecone via the `pinecone` SDK: one index, a collection is a namespace in it.

The index is reached by its data-plane `index_host`, or found (and created, serverless) by
`index_name` through the control plane. Pinecone has no insert-only write (`append` upserts), keeps
the chunk text in metadata, cannot store nulls (they are left out) and lists ids only by prefix,
which is why chunk ids start with a per-document key.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pinecone import Pinecone, ServerlessSpec
from pinecone.exceptions import NotFoundException

from aietl.services.vector_sink.connectors.base import VectorRecord, VectorStore
from aietl.services.vector_sink.domain.filters import Compare, Exists, FilterNode, parse_filter
from aietl.services.vector_sink.domain.ids import doc_key
from aietl.services.vector_sink.domain.model import (
    CollectionSpec,
    CollectionStats,
    ConnectorConfigError,
    Hit,
    Metric,
)
from aietl.services.vector_sink.embeddings import Embedder
from aietl.shared.outbound import OutboundPolicy

UPSERT_BATCH = 200  # well inside Pinecone's 1,000 vectors / 2 MB per request
DELETE_BATCH = 1_000


class PineconeStore(VectorStore):
    kind = "pinecone"

    def __init__(
        self,
        api_key: str,
        *,
        index_host: str | None = None,
        index_name: str | None = None,
        control_host: str | None = None,
        cloud: str = "aws",
        region: str = "us-east-1",
        metric: Metric = "cosine",
        embedder: Embedder | None = None,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        """`outbound` checks the index host the control plane names before it is used."""
        super().__init__(embedder)
        if not index_host and not index_name:
            raise ConnectorConfigError("pinecone connector: set `index_host` or `index_name`")
        self._outbound = outbound
        self._api_key = api_key
        self._index_host = index_host
        self._index_name = index_name
        self._control_host = control_host
        self._cloud, self._region, self._metric = cloud, region, metric
        self._client: Pinecone | None = None
        self._index: Any = None

    def connect(self) -> None:
        with self._lock:
            if self._client is None:
                options: dict[str, Any] = {"host": self._control_host} if self._control_host else {}
                self._client = Pinecone(api_key=self._api_key, **options)

    def _data_plane(self, dimension: int | None = None) -> Any:
        """The index client; with only a name, find the index (or create it when a dimension is known)."""
        if self._index is None:
            self.connect()
            assert self._client is not None
            host = self._index_host
            if not host:
                assert self._index_name is not None
                if not self._client.has_index(self._index_name):
                    if dimension is None:
                        raise LookupError(f"pinecone index {self._index_name!r} does not exist")
                    self._client.create_index(
                        self._index_name,
                        dimension=dimension,
                        metric=self._metric,
                        spec=ServerlessSpec(cloud=self._cloud, region=self._region),
                    )
                description = self._client.describe_index(self._index_name)
                host = description.host
                if not host:
                    raise LookupError(f"pinecone index {self._index_name!r} has no host yet")
                if self._outbound is not None:  # the control plane's answer decides where we connect
                    self._outbound.check_url(host if "://" in host else f"https://{host}")
                self._metric = str(description.metric).lower()  # type: ignore[assignment]
            self._index = self._client.Index(host=host)
        return self._index

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
            self._index = None
            self._client = None

    def ping(self) -> None:
        with self._lock:
            self._data_plane().describe_index_stats()

    def ensure_collection(self, spec: CollectionSpec) -> CollectionSpec:
        """Namespaces exist implicitly; the index's dimension must match."""
        with self._lock:
            self._data_plane(spec.dimension)
            in_force = self._describe(spec.name)
            assert in_force is not None
            self._specs[spec.name] = in_force
            return in_force

    def _describe(self, name: str) -> CollectionSpec | None:
        stats = self._data_plane().describe_index_stats()
        return CollectionSpec(name, int(stats.dimension), self._metric)

    def drop_collection(self, name: str) -> None:
        with self._lock, contextlib.suppress(NotFoundException):  # an empty namespace does not exist
            self._data_plane().delete(delete_all=True, namespace=name)

    def stats(self, name: str) -> CollectionStats:
        spec = self._spec(name)
        with self._lock:
            namespaces = self._data_plane().describe_index_stats().namespaces or {}
        summary = namespaces.get(name)
        count = int(summary.vector_count) if summary is not None else 0
        return CollectionStats(name, count, spec.dimension, spec.metric)

    def _write(self, collection: str, records: list[VectorRecord], *, upsert: bool) -> None:
        index = self._data_plane()
        vectors = [
            {
                "id": r.id,
                "values": r.vector.tolist(),
                "metadata": {k: v for k, v in {**r.metadata, "text": r.text}.items() if v is not None},
            }
            for r in records
        ]
        for start in range(0, len(vectors), UPSERT_BATCH):
            index.upsert(vectors=vectors[start : start + UPSERT_BATCH], namespace=collection)

    def delete(
        self, collection: str, ids: list[str] | None = None, filter: dict[str, Any] | None = None
    ) -> None:
        if (ids is None) == (filter is None):
            raise ValueError("delete by `ids` or by `filter`, exactly one")
        with self._lock:
            index = self._data_plane()
            if ids is not None:
                for start in range(0, len(ids), DELETE_BATCH):
                    index.delete(ids=ids[start : start + DELETE_BATCH], namespace=collection)
            else:
                node = parse_filter(filter)
                if node is not None:
                    index.delete(filter=to_pinecone(node), namespace=collection)

    def _search(
        self,
        collection: str,
        vector: list[float],
        keywords: str | None,
        top_k: int,
        filter: FilterNode | None,
    ) -> list[Hit]:
        response = self._data_plane().query(
            vector=vector,
            top_k=top_k,
            namespace=collection,
            filter=to_pinecone(filter) if filter is not None else None,
            include_metadata=True,
        )
        hits = []
        for match in response.matches:
            metadata = dict(match.metadata or {})
            text = metadata.pop("text", None)
            hits.append(Hit(id=match.id, score=float(match.score), text=text, metadata=metadata))
        return hits

    def document_ids(self, collection: str, doc_id: str) -> set[str]:
        ids: set[str] = set()
        token = None
        with self._lock:
            while True:
                page = self._data_plane().list_paginated(
                    prefix=doc_key(doc_id) + ":", namespace=collection, pagination_token=token
                )
                ids.update(item.id for item in page.vectors or [])
                token = page.pagination.next if page.pagination else None
                if not token:
                    return ids


def to_pinecone(node: FilterNode) -> dict[str, Any]:
    """A parsed filter back in Pinecone's canonical form (explicit operators)."""
    if isinstance(node, Compare):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {node.field: {node.op: value}}
    if isinstance(node, Exists):
        return {node.field: {"$exists": node.exists}}
    return {node.op: [to_pinecone(part) for part in node.parts]}
