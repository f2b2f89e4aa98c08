"""A FAKE of the Weaviate calls the connector makes: REST (meta, readiness, schema) and gRPC
(health, BatchObjects, BatchDelete, Search, Aggregate), built on the client's own protobuf modules.

It checks the wire contract only: that the real weaviate-client v4 sends requests this fake can
decode and accepts the replies it builds. It is not Weaviate: scoring is brute force (cosine
distance; hybrid is a simple weighted blend of vector similarity and term overlap), and only the
filter operators the connector emits are understood.
"""

from __future__ import annotations

import re
import struct
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

from tests.vector_sink.fakes import JsonRequestHandler

VERSION = "1.32.0"
HNSW_DEFAULTS = {  # what a Weaviate server reports for an HNSW index created with no options
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1_000_000_000_000,
    "flatSearchCutoff": 40_000,
    "distance": "cosine",
    "filterStrategy": "sweeping",
}
Op = base_pb2.Filters


def _floats(message: Any) -> list[float]:
    """A vector as the client sends it: packed float32 bytes, a `vectors` entry, or a float list."""
    if getattr(message, "vector_bytes", b""):
        data = message.vector_bytes
        return list(struct.unpack(f"{len(data) // 4}f", data))
    for item in getattr(message, "vectors", []):
        data = item.vector_bytes
        return list(struct.unpack(f"{len(data) // 4}f", data))
    return list(message.vector)


def _filter_value(node: Any) -> Any:
    kind = node.WhichOneof("test_value")
    if kind and kind.endswith("_array"):
        return list(getattr(node, kind).values)
    return getattr(node, kind) if kind else None


def _matches(node: Any, obj: dict[str, Any]) -> bool:
    op = node.operator
    if op == Op.OPERATOR_AND:
        return all(_matches(part, obj) for part in node.filters)
    if op == Op.OPERATOR_OR:
        return any(_matches(part, obj) for part in node.filters)
    if op == Op.OPERATOR_NOT:
        return not _matches(node.filters[0], obj)
    path = list((node.target.property and [node.target.property]) or node.on)
    field = path[0]
    have = obj["uuid"] if field in ("_id", "id") else obj["properties"].get(field)
    want = _filter_value(node)
    if op == Op.OPERATOR_IS_NULL:
        return (have is None) == bool(want)
    if have is None:
        return False
    if op == Op.OPERATOR_CONTAINS_ANY:
        return have in want
    comparisons = {
        Op.OPERATOR_EQUAL: lambda: have == want,
        Op.OPERATOR_NOT_EQUAL: lambda: have != want,
        Op.OPERATOR_GREATER_THAN: lambda: have > want,
        Op.OPERATOR_GREATER_THAN_EQUAL: lambda: have >= want,
        Op.OPERATOR_LESS_THAN: lambda: have < want,
        Op.OPERATOR_LESS_THAN_EQUAL: lambda: have <= want,
    }
    if op not in comparisons:
        raise NotImplementedError(f"fake: filter operator {op}")
    return bool(comparisons[op]())


def _value(value: Any) -> properties_pb2.Value:
    if isinstance(value, bool):
        return properties_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return properties_pb2.Value(int_value=value)
    if isinstance(value, float):
        return properties_pb2.Value(number_value=value)
    return properties_pb2.Value(text_value=str(value))


def _python(value: Any) -> Any:
    """Struct values are all floats; integral ones came in as ints (as the server's schema knows)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    """gRPC methods keep the service's own (CamelCase) names."""

    def __init__(self, fake: FakeWeaviate) -> None:
        self.fake = fake

    def _authorize(self, context: Any) -> None:
        """The client sends the API key as `authorization` metadata on every gRPC call."""
        header = dict(context.invocation_metadata()).get("authorization")
        if not self.fake.authorized(header):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "anonymous access not enabled")

    def BatchObjects(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        errors = []
        with self.fake.lock:
            for index, obj in enumerate(request.objects):
                objects = self.fake.collections.get(obj.collection)
                if objects is None:
                    errors.append(
                        batch_pb2.BatchObjectsReply.BatchError(index=index, error="class not found")
                    )
                    continue
                props = {k: _python(v) for k, v in obj.properties.non_ref_properties.items()}
                objects[obj.uuid] = {"uuid": obj.uuid, "vector": _floats(obj), "properties": props}
        self.fake.calls.append("BatchObjects")
        return batch_pb2.BatchObjectsReply(took=0.001, errors=errors)

    def BatchDelete(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        with self.fake.lock:
            objects = self.fake.collections.get(request.collection, {})
            doomed = [key for key, obj in objects.items() if _matches(request.filters, obj)]
            for key in doomed:
                del objects[key]
        self.fake.calls.append("BatchDelete")
        return batch_delete_pb2.BatchDeleteReply(took=0.001, matches=len(doomed), successful=len(doomed))

    def Aggregate(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        count = len(self.fake.collections.get(request.collection, {}))
        self.fake.calls.append("Aggregate")
        return aggregate_pb2.AggregateReply(
            took=0.001, single_result=aggregate_pb2.AggregateReply.Single(objects_count=count)
        )

    def Search(self, request: Any, context: Any) -> Any:
        self._authorize(context)
        self.fake.calls.append("Search")
        with self.fake.lock:
            objects = list(self.fake.collections.get(request.collection, {}).values())
        if request.HasField("filters"):
            objects = [obj for obj in objects if _matches(request.filters, obj)]
        scored: list[tuple[float, float | None, dict[str, Any]]] = []  # (score, distance, object)
        if request.HasField("near_vector"):
            query = np.asarray(_floats(request.near_vector))
            for obj in objects:
                distance = self.fake.cosine_distance(query, obj["vector"])
                scored.append((-distance, distance, obj))
        elif request.HasField("hybrid_search"):
            hybrid = request.hybrid_search
            query = np.asarray(
                _floats(hybrid.near_vector) if hybrid.HasField("near_vector") else _floats(hybrid)
            )
            terms = set(re.findall(r"\w+", hybrid.query.lower()))
            for obj in objects:
                similarity = 1 - self.fake.cosine_distance(query, obj["vector"]) / 2
                words = set(re.findall(r"\w+", str(obj["properties"].get("text", "")).lower()))
                keyword = len(terms & words) / max(len(terms), 1)
                scored.append((hybrid.alpha * similarity + (1 - hybrid.alpha) * keyword, None, obj))
        else:
            scored = [(0.0, None, obj) for obj in objects]
        scored.sort(key=lambda entry: -entry[0])
        wanted = list(request.properties.non_ref_properties) if request.HasField("properties") else []
        results = []
        for score, hit_distance, obj in scored[: request.limit or 10]:
            props = {k: v for k, v in obj["properties"].items() if not wanted or k in wanted}
            metadata = search_get_pb2.MetadataResult(id=obj["uuid"])
            if hit_distance is not None:
                metadata.distance, metadata.distance_present = hit_distance, True
            else:
                metadata.score, metadata.score_present = score, True
            results.append(
                search_get_pb2.SearchResult(
                    metadata=metadata,
                    properties=search_get_pb2.PropertiesResult(
                        non_ref_props=properties_pb2.Properties(
                            fields={k: _value(v) for k, v in props.items()}
                        ),
                        target_collection=request.collection,
                    ),
                )
            )
        return search_get_pb2.SearchReply(took=0.001, results=results)


def _health(request: Any, context: Any) -> Any:
    return health_weaviate_pb2.WeaviateHealthCheckResponse(
        status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
    )


class FakeWeaviate:
    """REST on one loopback port, gRPC on another; `url` and `grpc_port` go to the connector."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        health = grpc.method_handlers_generic_handler(
            "grpc.health.v1.Health",
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    _health,
                    request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
                    response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
                )
            },
        )
        self._grpc.add_generic_rpc_handlers((health,))
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> FakeWeaviate:
        self._grpc.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)

    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    @staticmethod
    def cosine_distance(query: np.ndarray, vector: list[float]) -> float:
        values = np.asarray(vector)
        return float(1 - values @ query / ((np.linalg.norm(values) * np.linalg.norm(query)) or 1.0))

    def _class_json(self, body: dict[str, Any]) -> dict[str, Any]:
        """The class as the server returns it: the posted one with the defaults a server fills in."""
        return {
            "invertedIndexConfig": {
                "bm25": {"b": 0.75, "k1": 1.2},
                "cleanupIntervalSeconds": 60,
                "stopwords": {"additions": None, "preset": "en", "removals": None},
            },
            "multiTenancyConfig": {
                "enabled": False,
                "autoTenantCreation": False,
                "autoTenantActivation": False,
            },
            "replicationConfig": {
                "factor": 1,
                "asyncEnabled": False,
                "deletionStrategy": "NoAutomatedResolution",
            },
            "shardingConfig": {
                "virtualPerPhysical": 128,
                "desiredCount": 1,
                "actualCount": 1,
                "desiredVirtualCount": 128,
                "actualVirtualCount": 128,
                "key": "_id",
                "strategy": "hash",
                "function": "murmur3",
            },
            **body,
            "vectorConfig": {
                name: {
                    **vector,
                    "vectorIndexConfig": {**HNSW_DEFAULTS, **vector.get("vectorIndexConfig", {})},
                }
                for name, vector in body.get("vectorConfig", {}).items()
            },
            "properties": [
                {"indexFilterable": True, "indexSearchable": True, "tokenization": "word", **p}
                for p in body.get("properties", [])
            ],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonRequestHandler):
            def _handle(self) -> None:
                body = self._json_body()
                path = self.path.split("?")[0].rstrip("/")
                fake.calls.append(f"{self.command} {path}")
                public = path in ("/v1/meta", "/v1/.well-known/openid-configuration")
                if not public and not fake.authorized(self.headers.get("authorization")):
                    self._reply(401, {"error": [{"message": "anonymous access not enabled"}]})
                    return
                if path == "/v1/meta":
                    self._reply(200, {"hostname": "http://[::]:8080", "modules": {}, "version": VERSION})
                elif path == "/v1/.well-known/ready":
                    self._reply(200)
                elif path == "/v1/.well-known/openid-configuration":
                    self._reply(404)
                elif path == "/v1/schema" and self.command == "POST":
                    name = body["class"]
                    with fake.lock:
                        fake.schemas[name] = fake._class_json(body)
                        fake.collections[name] = {}
                    self._reply(200, fake.schemas[name])
                elif path.startswith("/v1/schema/"):
                    name = path.removeprefix("/v1/schema/")
                    if self.command == "DELETE":
                        with fake.lock:
                            fake.schemas.pop(name, None)
                            fake.collections.pop(name, None)
                        self._reply(200)
                    elif name in fake.schemas:
                        self._reply(200, fake.schemas[name])
                    else:
                        self._reply(404)
                else:
                    self._reply(404, {"error": [{"message": f"fake: no route {self.command} {path}"}]})

            do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _handle

        return Handler
