"""Weaviate via weaviate-client v4 (REST for the schema, gRPC for data and search).

A collection is a Weaviate collection (class) whose name is the scoped name with a capital first
letter. Weaviate ids are UUIDs, so an object's UUID is uuid5 of the chunk id and the chunk id is
kept in the `chunk_id` property. Weaviate fixes no dimension in the schema: the connector records
dimension and metric in the collection's description. Hybrid search is Weaviate's own (BM25 + vector).

Tested here only against a fake of the REST + gRPC calls (tests/vector_sink/fakes): that checks the
wire contract, not Weaviate's behaviour. A live test runs when WEAVIATE_URL is set.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import weaviate
from weaviate.classes.config import Configure, DataType, Property, VectorDistances
from weaviate.classes.init import Auth
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.collections.classes.data import DataObject
from weaviate.util import generate_uuid5

from aietl.services.vector_sink.connectors.base import VectorRecord, VectorStore
from aietl.services.vector_sink.domain.filters import Compare, Exists, FilterNode, parse_filter
from aietl.services.vector_sink.domain.model import CollectionSpec, CollectionStats, FieldType, Hit, Metric
from aietl.services.vector_sink.embeddings import Embedder

DISTANCES: dict[Metric, VectorDistances] = {
    "cosine": VectorDistances.COSINE,
    "l2": VectorDistances.L2_SQUARED,
    "ip": VectorDistances.DOT,
}
TYPES: dict[FieldType, DataType] = {
    "str": DataType.TEXT,
    "int": DataType.INT,
    "float": DataType.NUMBER,
    "bool": DataType.BOOL,
}
FIXED_PROPERTIES = [
    Property(name="chunk_id", data_type=DataType.TEXT, skip_vectorization=True),
    Property(name="text", data_type=DataType.TEXT),
    Property(name="doc_id", data_type=DataType.TEXT, skip_vectorization=True),
    Property(name="chunk_index", data_type=DataType.INT),
    Property(name="content_hash", data_type=DataType.TEXT, skip_vectorization=True),
]
DESCRIPTION = re.compile(r"aietl-vector-sink dimension=(\d+) metric=(\w+)")
FETCH_LIMIT = 10_000
HYBRID_ALPHA = 0.5  # equal weight to vector and BM25 relevance


def _condition(node: Compare) -> Any:
    prop = Filter.by_property(node.field)
    if node.op == "$in":
        return prop.contains_any(list(node.value))
    if node.op == "$nin":
        return Filter.all_of([prop.not_equal(value) for value in node.value])
    method = {
        "$eq": prop.equal,
        "$ne": prop.not_equal,
        "$gt": prop.greater_than,
        "$gte": prop.greater_or_equal,
        "$lt": prop.less_than,
        "$lte": prop.less_or_equal,
    }[node.op]
    return method(node.value)


def weaviate_filter(node: FilterNode | None) -> Any:
    """Compile a parsed filter to the client's `Filter` objects (sent as protobuf)."""
    if node is None:
        return None
    if isinstance(node, Compare):
        return _condition(node)
    if isinstance(node, Exists):
        return Filter.by_property(node.field).is_none(not node.exists)
    parts = [weaviate_filter(part) for part in node.parts]
    return Filter.all_of(parts) if node.op == "$and" else Filter.any_of(parts)


class WeaviateStore(VectorStore):
    kind = "weaviate"
    supports_hybrid = True

    def __init__(
        self,
        url: str,
        grpc_host: str | None = None,
        grpc_port: int = 50051,
        api_key: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        super().__init__(embedder)
        self.url = url
        self._grpc_host, self._grpc_port = grpc_host, grpc_port
        self._api_key = api_key
        self._client: weaviate.WeaviateClient | None = None

    @property
    def client(self) -> weaviate.WeaviateClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            parsed = urlparse(self.url)
            secure = parsed.scheme == "https"
            self._client = weaviate.connect_to_custom(
                http_host=parsed.hostname or "localhost",
                http_port=parsed.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=self._grpc_host or parsed.hostname or "localhost",
                grpc_port=self._grpc_port,
                grpc_secure=secure,
                auth_credentials=Auth.api_key(self._api_key) if self._api_key else None,
            )

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def ping(self) -> None:
        with self._lock:
            if not self.client.is_ready():
                raise ConnectionError("Weaviate is not ready")

    @staticmethod
    def _class(name: str) -> str:
        return name[:1].upper() + name[1:]

    def ensure_collection(self, spec: CollectionSpec) -> CollectionSpec:
        with self._lock:
            name = self._class(spec.name)
            if not self.client.collections.exists(name):
                self.client.collections.create(
                    name,
                    description=f"aietl-vector-sink dimension={spec.dimension} metric={spec.metric}",
                    properties=FIXED_PROPERTIES
                    + [Property(name=k, data_type=TYPES[v]) for k, v in spec.metadata_schema.items()],
                    vector_config=Configure.Vectors.self_provided(
                        vector_index_config=Configure.VectorIndex.hnsw(distance_metric=DISTANCES[spec.metric])
                    ),
                )
            in_force = self._describe(spec.name) or spec
            self._specs[spec.name] = in_force
            return in_force

    def _describe(self, name: str) -> CollectionSpec | None:
        if not self.client.collections.exists(self._class(name)):
            return None
        config = self.client.collections.get(self._class(name)).config.get()
        found = DESCRIPTION.search(config.description or "")
        if found is None:
            raise ValueError(f"weaviate collection {name!r} was not created by the vector sink")
        by_type = {v: k for k, v in TYPES.items()}
        fixed = {p.name for p in FIXED_PROPERTIES}
        schema = {
            p.name: by_type[p.data_type]
            for p in config.properties
            if p.name not in fixed and p.data_type in by_type
        }
        return CollectionSpec(name, int(found.group(1)), found.group(2), schema)  # type: ignore[arg-type]

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self.client.collections.delete(self._class(name))
            self._specs.pop(name, None)

    def stats(self, name: str) -> CollectionStats:
        spec = self._spec(name)
        with self._lock:
            total = self.client.collections.get(self._class(name)).aggregate.over_all(total_count=True)
        return CollectionStats(name, int(total.total_count or 0), spec.dimension, spec.metric)

    def _write(self, collection: str, records: list[VectorRecord], *, upsert: bool) -> None:
        """Weaviate's batch import replaces an object with the same UUID: append and upsert agree."""
        objects = [
            DataObject(
                properties={
                    **{k: v for k, v in r.metadata.items() if v is not None},
                    "chunk_id": r.id,
                    "text": r.text,
                },
                uuid=generate_uuid5(r.id),
                vector=r.vector.tolist(),
            )
            for r in records
        ]
        result = self.client.collections.get(self._class(collection)).data.insert_many(objects)
        if result.has_errors:
            first = next(iter(result.errors.values()))
            raise RuntimeError(f"weaviate rejected {len(result.errors)} objects: {first.message}")

    def delete(
        self, collection: str, ids: list[str] | None = None, filter: dict[str, Any] | None = None
    ) -> None:
        if (ids is None) == (filter is None):
            raise ValueError("delete by `ids` or by `filter`, exactly one")
        with self._lock:
            data = self.client.collections.get(self._class(collection)).data
            if ids is not None:
                if ids:
                    data.delete_many(where=Filter.by_id().contains_any([generate_uuid5(i) for i in ids]))
            else:
                where = weaviate_filter(parse_filter(filter))
                if where is not None:
                    data.delete_many(where=where)

    def _search(
        self,
        collection: str,
        vector: list[float],
        keywords: str | None,
        top_k: int,
        filter: FilterNode | None,
    ) -> list[Hit]:
        query = self.client.collections.get(self._class(collection)).query
        where = weaviate_filter(filter)
        if keywords:
            response = query.hybrid(
                query=keywords,
                vector=vector,
                alpha=HYBRID_ALPHA,
                limit=top_k,
                filters=where,
                return_metadata=MetadataQuery(score=True),
            )
            scores = [float(o.metadata.score or 0.0) for o in response.objects]
        else:
            response = query.near_vector(
                near_vector=vector, limit=top_k, filters=where, return_metadata=MetadataQuery(distance=True)
            )
            metric = self._spec(collection).metric
            scores = [
                (1.0 - d) if metric == "cosine" else -d
                for d in (float(o.metadata.distance or 0.0) for o in response.objects)
            ]
        hits = []
        for obj, score in zip(response.objects, scores, strict=True):
            properties = dict(obj.properties)
            chunk_id = str(properties.pop("chunk_id", obj.uuid))
            text = properties.pop("text", None)
            text = None if text is None else str(text)
            metadata = {k: v for k, v in properties.items() if v is not None}
            hits.append(Hit(id=chunk_id, score=score, text=text, metadata=metadata))
        return hits

    def document_ids(self, collection: str, doc_id: str) -> set[str]:
        with self._lock:
            response = self.client.collections.get(self._class(collection)).query.fetch_objects(
                filters=Filter.by_property("doc_id").equal(doc_id),
                limit=FETCH_LIMIT,
                return_properties=["chunk_id"],
            )
        return {str(o.properties["chunk_id"]) for o in response.objects}
