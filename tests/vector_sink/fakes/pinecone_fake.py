"""A FAKE of Pinecone's data plane (JSON over HTTP, camelCase), for testing the connector with the
real `pinecone` SDK. It checks the wire contract only: request paths and bodies, the `Api-Key`
header, the metadata filter language (`$eq/$ne/$gt/$gte/$lt/$lte/$in/$nin/$exists/$and/$or`) and
cosine scoring. It is not Pinecone: no persistence, no pods, no limits beyond the ones checked."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from tests.vector_sink.fakes import JsonRequestHandler


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "$eq":
        return bool(have == want)
    if op == "$ne":
        return bool(have != want)
    if op == "$in":
        return have in want
    if op == "$nin":
        return have not in want
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (have, want))
    if not numbers and not (isinstance(have, str) and isinstance(want, str)):
        return False  # ordering compares numbers with numbers, strings with strings
    return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]


def matches(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Pinecone's filter semantics as documented; a missing field fails every comparison."""
    for key, condition in spec.items():
        if key == "$and":
            if not all(matches(part, metadata) for part in condition):
                return False
        elif key == "$or":
            if not any(matches(part, metadata) for part in condition):
                return False
        else:
            conditions = condition if isinstance(condition, dict) else {"$eq": condition}
            for op, want in conditions.items():
                if op == "$exists":
                    if (key in metadata) != want:
                        return False
                elif key not in metadata or not _compare(op, metadata[key], want):
                    return False
    return True


class FakePinecone:
    """One index of a fixed dimension, served on a loopback port; `url` goes to `Index(host=...)`."""

    def __init__(self, dimension: int, api_key: str = "fake-key") -> None:
        self.dimension = dimension
        self.api_key = api_key
        self.namespaces: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonRequestHandler):
            def _handle(self) -> None:
                body = self._json_body() or {}
                url = urlparse(self.path)
                fake.requests.append((self.command, url.path))
                if self.headers.get("Api-Key") != fake.api_key:
                    self._reply(401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}})
                    return
                route = getattr(fake, "_" + url.path.strip("/").replace("/", "_"), None)
                if route is None:
                    self._reply(404, {"code": 5, "message": f"no route {url.path}"})
                    return
                with fake._lock:
                    status, reply = route(body, {k: v[0] for k, v in parse_qs(url.query).items()})
                self._reply(status, reply)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakePinecone:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _dimension_error(self, got: int) -> str:
        return f"Vector dimension {got} does not match the dimension of the index {self.dimension}"

    @staticmethod
    def _bad(message: str) -> tuple[int, dict[str, Any]]:
        return 400, {"code": 3, "message": message, "details": []}

    # --- routes (named after their paths) ---

    def _vectors_upsert(self, body: dict[str, Any], _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        space = self.namespaces.setdefault(body.get("namespace", ""), {})
        for vector in body["vectors"]:
            if len(vector["values"]) != self.dimension:
                return self._bad(self._dimension_error(len(vector["values"])))
            if any(value is None for value in vector.get("metadata", {}).values()):
                return self._bad("Metadata value must be a string, number, boolean or list of strings")
        for vector in body["vectors"]:
            space[vector["id"]] = {"values": vector["values"], "metadata": vector.get("metadata", {})}
        return 200, {"upsertedCount": len(body["vectors"])}

    def _query(self, body: dict[str, Any], _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        namespace = body.get("namespace", "")
        query = np.asarray(body["vector"], dtype=np.float64)
        if query.shape != (self.dimension,):
            return self._bad(
                f"Vector dimension {len(query)} does not match the dimension of the index {self.dimension}"
            )
        candidates = [
            (vector_id, item)
            for vector_id, item in self.namespaces.get(namespace, {}).items()
            if matches(body.get("filter") or {}, item["metadata"])
        ]
        scored = []
        for vector_id, item in candidates:
            values = np.asarray(item["values"], dtype=np.float64)
            score = float(values @ query / (np.linalg.norm(values) * np.linalg.norm(query) or 1.0))
            scored.append((score, vector_id, item))
        scored.sort(key=lambda entry: -entry[0])
        matches_out = [
            {
                "id": vector_id,
                "score": score,
                "values": item["values"] if body.get("includeValues") else [],
                **({"metadata": item["metadata"]} if body.get("includeMetadata") else {}),
            }
            for score, vector_id, item in scored[: body["topK"]]
        ]
        return 200, {"matches": matches_out, "namespace": namespace, "usage": {"readUnits": 5}}

    def _vectors_delete(self, body: dict[str, Any], _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        namespace = body.get("namespace", "")
        space = self.namespaces.get(namespace)
        if body.get("deleteAll"):
            if space is None:
                return 404, {"code": 5, "message": "Namespace not found", "details": []}
            del self.namespaces[namespace]
        elif "ids" in body:
            for vector_id in body["ids"]:
                (space or {}).pop(vector_id, None)
        elif "filter" in body:
            for vector_id in [k for k, v in (space or {}).items() if matches(body["filter"], v["metadata"])]:
                (space or {}).pop(vector_id)
        return 200, {}

    def _describe_index_stats(self, _body: dict[str, Any], _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        namespaces = {name: {"vectorCount": len(space)} for name, space in self.namespaces.items() if space}
        return 200, {
            "namespaces": namespaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
        }

    def _vectors_list(self, _body: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        namespace = query.get("namespace", "")
        ids = sorted(k for k in self.namespaces.get(namespace, {}) if k.startswith(query.get("prefix", "")))
        limit = int(query.get("limit", 100))
        start = int(query.get("paginationToken", 0))
        page = ids[start : start + limit]
        reply: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            reply["pagination"] = {"next": str(start + limit)}
        return 200, reply
