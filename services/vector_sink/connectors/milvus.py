"""Milvus via pymilvus: Milvus Lite (a local file, the embedded default) or a Milvus server.

Learned by measuring Milvus Lite 3 (a pure-Python engine serving gRPC from a thread of this
process): flush once after a run of writes, not after every batch (each flush makes a segment to
compact and index; unflushed rows are durable in its WAL and searchable, but searched slowly); load
a collection after opening it, or search is refused; index vectors FLAT there (AUTOINDEX is HNSW,
rebuilt in the background per segment, and slower for filtered searches). Milvus Lite allows one
process per data file. Every collection gets a BM25 function over its text, so dense + keyword
hybrid search works (also in Milvus Lite).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pymilvus import AnnSearchRequest, DataType, Function, FunctionType, MilvusClient, RRFRanker

from aietl.services.vector_sink.connectors.base import VectorRecord, VectorStore
from aietl.services.vector_sink.domain.filters import Compare, Exists, FilterNode, parse_filter
from aietl.services.vector_sink.domain.model import CollectionSpec, CollectionStats, FieldType, Hit, Metric
from aietl.services.vector_sink.embeddings import Embedder

METRICS: dict[Metric, str] = {"cosine": "COSINE", "l2": "L2", "ip": "IP"}
FIELD_TYPES: dict[FieldType, DataType] = {
    "str": DataType.VARCHAR,
    "int": DataType.INT64,
    "float": DataType.DOUBLE,
    "bool": DataType.BOOL,
}
TEXT_MAX_BYTES = 65_535
QUERY_LIMIT = 16_384
HIDDEN = frozenset({"embedding", "sparse", "text", "id"})
OPS = {
    "$eq": "==",
    "$ne": "!=",
    "$gt": ">",
    "$gte": ">=",
    "$lt": "<",
    "$lte": "<=",
    "$in": "in",
    "$nin": "not in",
}


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value)


def milvus_expr(node: FilterNode | None) -> str:
    """Compile a parsed filter to a Milvus boolean expression (metadata keys are field names)."""
    if node is None:
        return ""
    if isinstance(node, Compare):
        expr = f"{node.field} {OPS[node.op]} {_literal(node.value)}"
        # a missing field matches no comparison, `$nin` included (Milvus alone would match it)
        return f"({node.field} is not null and {expr})" if node.op == "$nin" else f"({expr})"
    if isinstance(node, Exists):
        return f"({node.field} is {'not ' if node.exists else ''}null)"
    joiner = " and " if node.op == "$and" else " or "
    return "(" + joiner.join(milvus_expr(part) for part in node.parts) + ")"


QUIET_KEEPALIVE = {"grpc.keepalive_permit_without_calls": 0, "grpc.keepalive_time_ms": 300_000}
"""pymilvus pings every 10 s even when idle; a gRPC server with default settings (Milvus Lite's)
allows one ping per 5 minutes without data and answers the third with GOAWAY `too_many_pings`,
which fails the call racing it (seen in CI on a new client's `Connect`). Ping only during calls,
no more often than the server allows."""


class MilvusStore(VectorStore):
    kind = "milvus"
    supports_hybrid = True

    def __init__(
        self, uri: str, token: str | None = None, db_name: str = "", embedder: Embedder | None = None
    ):
        super().__init__(embedder)
        self.uri = uri
        self._token = token
        self._db_name = db_name
        self._client: MilvusClient | None = None

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            if "://" not in self.uri:
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            options: dict[str, Any] = {"uri": self.uri, "grpc_options": QUIET_KEEPALIVE}
            if self._token:
                options["token"] = self._token
            if self._db_name:
                options["db_name"] = self._db_name
            self._client = MilvusClient(**options)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def ping(self) -> None:
        with self._lock:
            self.client.list_collections()

    def ensure_collection(self, spec: CollectionSpec) -> CollectionSpec:
        with self._lock:
            client = self.client
            if not client.has_collection(spec.name):
                client.create_collection(
                    spec.name, schema=self._schema(spec), index_params=self._index_params(spec)
                )
            in_force = self._describe(spec.name) or spec
            if str(client.get_load_state(spec.name).get("state")) != "Loaded":
                client.load_collection(spec.name)
            self._specs[spec.name] = in_force
            return in_force

    def _schema(self, spec: CollectionSpec) -> Any:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=128)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=1_024, nullable=True)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES, enable_analyzer=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=spec.dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        for name, kind in spec.metadata_schema.items():
            extra = {"max_length": TEXT_MAX_BYTES} if kind == "str" else {}
            schema.add_field(name, FIELD_TYPES[kind], nullable=True, **extra)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        return schema

    def _index_params(self, spec: CollectionSpec) -> Any:
        params = MilvusClient.prepare_index_params()
        lite = self.client.get_server_version().startswith("milvus_lite")
        index_type = "FLAT" if lite else "AUTOINDEX"
        params.add_index("embedding", index_type=index_type, metric_type=METRICS[spec.metric])
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return params

    def _describe(self, name: str) -> CollectionSpec | None:
        if not self.client.has_collection(name):
            return None
        description = self.client.describe_collection(name)
        dimension = 0
        schema: dict[str, FieldType] = {}
        by_type = {v: k for k, v in FIELD_TYPES.items()}
        for spec_field in description["fields"]:
            if spec_field["name"] == "embedding":
                dimension = int(spec_field["params"]["dim"])
            elif (
                spec_field["name"] not in ("id", "doc_id", "text", "sparse") and spec_field["type"] in by_type
            ):
                schema[spec_field["name"]] = by_type[spec_field["type"]]
        metric: Metric = "cosine"
        for index in self.client.list_indexes(name, field_name="embedding"):
            found = str(self.client.describe_index(name, index).get("metric_type", "COSINE")).upper()
            metric = next((k for k, v in METRICS.items() if v == found), "cosine")
        return CollectionSpec(name, dimension, metric, schema)

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self.client.drop_collection(name)
            self._specs.pop(name, None)

    def stats(self, name: str) -> CollectionStats:
        spec = self._spec(name)
        with self._lock:
            rows = self.client.query(name, filter="", output_fields=["count(*)"])
        return CollectionStats(name, int(rows[0]["count(*)"]), spec.dimension, spec.metric)

    def _write(self, collection: str, records: list[VectorRecord], *, upsert: bool) -> None:
        rows = [
            {
                **{k: v for k, v in r.metadata.items() if v is not None},
                "id": r.id,
                "doc_id": r.metadata.get("doc_id"),
                "text": r.text,
                "embedding": r.vector,
            }
            for r in records
        ]
        if upsert:
            self.client.upsert(collection, rows)
        else:
            self.client.insert(collection, rows)

    def flush(self, collection: str) -> None:
        with self._lock:
            self.client.flush(collection)

    def delete(
        self, collection: str, ids: list[str] | None = None, filter: dict[str, Any] | None = None
    ) -> None:
        if (ids is None) == (filter is None):
            raise ValueError("delete by `ids` or by `filter`, exactly one")
        with self._lock:
            if ids is not None:
                if ids:
                    self.client.delete(collection, ids=ids)
            else:
                self.client.delete(collection, filter=milvus_expr(parse_filter(filter)))

    def _search(
        self,
        collection: str,
        vector: list[float],
        keywords: str | None,
        top_k: int,
        filter: FilterNode | None,
    ) -> list[Hit]:
        expr = milvus_expr(filter)
        # never the vectors: text, doc id, declared fields and the dynamic ones ($meta)
        fields = ["text", "doc_id", *self._spec(collection).metadata_schema, "$meta"]
        if keywords:
            requests = [
                AnnSearchRequest([vector], "embedding", {}, limit=top_k, expr=expr or None),
                AnnSearchRequest([keywords], "sparse", {}, limit=top_k, expr=expr or None),
            ]
            result = self.client.hybrid_search(
                collection, requests, ranker=RRFRanker(), limit=top_k, output_fields=fields
            )
        else:
            result = self.client.search(
                collection, [vector], anns_field="embedding", limit=top_k, filter=expr, output_fields=fields
            )
        return [
            Hit(
                id=str(hit["id"]),
                score=float(hit["distance"]),
                text=hit["entity"].get("text"),
                metadata={k: v for k, v in hit["entity"].items() if k not in HIDDEN},
            )
            for hit in result[0]
        ]

    def document_ids(self, collection: str, doc_id: str) -> set[str]:
        with self._lock:
            rows = self.client.query(
                collection, filter=f"doc_id == {json.dumps(doc_id)}", output_fields=["id"], limit=QUERY_LIMIT
            )
        return {str(row["id"]) for row in rows}
