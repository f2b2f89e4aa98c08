"""The Milvus connector on Milvus Lite (the real engine, a file under tmp): every operation."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aietl.services.vector_sink.config import MilvusOptions
from aietl.services.vector_sink.connectors import milvus_uri
from aietl.services.vector_sink.connectors.base import CollectionNotFound
from aietl.services.vector_sink.connectors.milvus import MilvusStore, milvus_expr
from aietl.services.vector_sink.domain.filters import parse_filter
from aietl.services.vector_sink.domain.model import CollectionSpec
from aietl.services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from aietl.shared.embedded_broker import free_port
from aietl.shared.outbound import OutboundPolicy
from aietl.shared.settings import Settings

TEXTS = [
    "How to reset a forgotten password",
    "Paris weather forecast: sunny and warm",
    "Baking sourdough bread at home",
    "Kubernetes pods restart after an out of memory error",
    "Changing your account password in settings",
    "The best croissants in Paris",
]


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusStore]:
    store = MilvusStore(
        str(tmp_path_factory.mktemp("milvus") / "lite.db"), embedder=create_embedder(EmbeddingConfig())
    )
    store.connect()
    yield store
    store.close()


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(len(TEXTS))],
            "text": TEXTS,
            "doc_id": ["auth", "travel", "food", "ops", "auth", "travel"],
            "year": [2020, 2021, 2022, 2023, 2024, 2025],
            "lang": ["en", "en", "de", "en", "fr", None],
        }
    )


@pytest.fixture(scope="module")
def shared(milvus: MilvusStore) -> str:
    """One collection for the tests that only read."""
    milvus.ensure_collection(CollectionSpec("t_shared", 256, "cosine", {"year": "int"}))
    milvus.write_data(data=_frame(), table_name="t_shared", mode="upsert")
    return "t_shared"


@pytest.fixture
def collection(milvus: MilvusStore, request: pytest.FixtureRequest) -> str:
    """A fresh collection for a test that writes."""
    name = f"t_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')}"[:60]
    milvus.ensure_collection(CollectionSpec(name, 256, "cosine", {"year": "int"}))
    milvus.write_data(data=_frame(), table_name=name, mode="upsert")
    return name


def test_ensure_collection_is_idempotent_and_reports_the_existing_spec(
    milvus: MilvusStore, shared: str
) -> None:
    again = milvus.ensure_collection(CollectionSpec(shared, 256, "l2"))
    assert again == CollectionSpec(shared, 256, "cosine", {"year": "int"})  # the existing one wins
    stats = milvus.stats(shared)
    assert (stats.count, stats.dimension, stats.metric) == (len(TEXTS), 256, "cosine")


def test_reopened_store_knows_collections(milvus: MilvusStore, shared: str) -> None:
    fresh = MilvusStore(milvus.uri, embedder=milvus.embedder)
    fresh.connect()
    assert fresh.query(shared, text="password", top_k=1)[0].id in {"c0", "c4"}
    with pytest.raises(CollectionNotFound):
        fresh.stats("missing_collection")


def test_text_query_finds_semantic_neighbours(milvus: MilvusStore, shared: str) -> None:
    hits = milvus.query(shared, text="I forgot my password", top_k=2)
    assert {h.id for h in hits} == {"c0", "c4"}
    assert hits[0].score >= hits[1].score
    assert hits[0].metadata["doc_id"] == "auth" and "embedding" not in hits[0].metadata
    assert hits[0].text in TEXTS


def test_vector_query_and_dimension_check(milvus: MilvusStore, shared: str) -> None:
    assert milvus.embedder is not None
    vector = milvus.embedder.embed(["sourdough"])[0].tolist()
    assert milvus.query(shared, vector=vector, top_k=1)[0].id == "c2"
    with pytest.raises(ValueError, match="dimension 3"):
        milvus.query(shared, vector=[0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"year": {"$gte": 2023}}, {"c3", "c4", "c5"}),
        ({"year": {"$gt": 2023}}, {"c4", "c5"}),
        ({"year": {"$lt": 2021}}, {"c0"}),
        ({"year": {"$lte": 2021}}, {"c0", "c1"}),
        ({"lang": "de"}, {"c2"}),
        ({"lang": {"$ne": "en"}}, {"c2", "c4"}),
        ({"lang": {"$in": ["de", "fr"]}}, {"c2", "c4"}),
        ({"lang": {"$nin": ["en", "de"]}}, {"c4"}),
        ({"lang": {"$exists": False}}, {"c5"}),
        ({"$or": [{"doc_id": "food"}, {"year": 2020}]}, {"c0", "c2"}),
        ({"$and": [{"doc_id": "travel"}, {"year": {"$gt": 2021}}]}, {"c5"}),
    ],
)
def test_metadata_filters(milvus: MilvusStore, shared: str, spec: dict, expected: set[str]) -> None:
    hits = milvus.query(shared, text="anything", top_k=10, filter=spec)
    assert {h.id for h in hits} == expected, milvus_expr(parse_filter(spec))


def test_hybrid_search_combines_bm25_and_dense(milvus: MilvusStore, shared: str) -> None:
    hits = milvus.query(shared, text="Kubernetes memory", top_k=3, hybrid=True)
    assert hits[0].id == "c3"
    filtered = milvus.query(shared, text="Paris", top_k=5, hybrid=True, filter={"year": {"$gte": 2025}})
    assert [h.id for h in filtered] == ["c5"]


def test_write_modes(milvus: MilvusStore, collection: str) -> None:
    milvus.write_data(
        data=pd.DataFrame({"id": ["c0"], "text": ["Password reset, updated"], "doc_id": ["auth"]}),
        table_name=collection,
        mode="upsert",
    )
    assert milvus.stats(collection).count == len(TEXTS)  # same id replaced
    vector = np.ones(256, dtype=np.float32) / 16
    milvus.write_data(
        data=pd.DataFrame({"id": ["v1"], "embedding": [vector], "doc_id": ["vec"]}),
        table_name=collection,
        mode="append",
    )
    assert milvus.stats(collection).count == len(TEXTS) + 1
    assert milvus.document_ids(collection, "vec") == {"v1"}
    milvus.write_data(data=_frame().head(2), table_name=collection, mode="overwrite")
    assert milvus.stats(collection).count == 2
    with pytest.raises(ValueError, match="mode must be"):
        milvus.write_data(data=_frame(), table_name=collection, mode="merge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`text` or an `embedding`"):
        milvus.write_data(data=pd.DataFrame({"id": ["x"]}), table_name=collection)
    with pytest.raises(ValueError, match="dimension 2"):
        milvus.write_data(data=pd.DataFrame({"id": ["x"], "embedding": [[1.0, 0.0]]}), table_name=collection)


def test_delete_by_ids_and_by_filter(milvus: MilvusStore, collection: str) -> None:
    assert milvus.document_ids(collection, "auth") == {"c0", "c4"}
    milvus.delete(collection, ids=["c0"])
    assert milvus.document_ids(collection, "auth") == {"c4"}
    milvus.delete(collection, filter={"doc_id": "travel"})
    assert milvus.document_ids(collection, "travel") == set()
    assert milvus.stats(collection).count == len(TEXTS) - 3
    with pytest.raises(ValueError, match="exactly one"):
        milvus.delete(collection)


def test_unflushed_writes_and_deletes_are_seen_at_once(milvus: MilvusStore) -> None:
    """The service flushes once per run: until then, searches must still see every batch."""
    name = "t_unflushed"
    milvus.ensure_collection(CollectionSpec(name, 256, "cosine", {"year": "int"}))
    for start in range(0, len(TEXTS), 2):
        milvus.write_data(data=_frame().iloc[start : start + 2], table_name=name, flush=False)
    assert milvus.stats(name).count == len(TEXTS)
    assert milvus.query(name, text="sourdough bread", top_k=1)[0].id == "c2"
    milvus.delete(name, ids=["c2"])
    assert "c2" not in {h.id for h in milvus.query(name, text="sourdough bread", top_k=3)}
    milvus.flush(name)
    assert milvus.document_ids(name, "food") == set() and milvus.stats(name).count == len(TEXTS) - 1


def test_milvus_lite_indexes_vectors_flat(milvus: MilvusStore, shared: str) -> None:
    """AUTOINDEX is HNSW in Milvus Lite: rebuilt per segment and slower for filtered searches."""
    (index,) = milvus.client.list_indexes(shared, field_name="embedding")
    assert milvus.client.describe_index(shared, index)["index_type"] == "FLAT"


def test_ping_and_drop(milvus: MilvusStore, tmp_path: Path) -> None:
    milvus.ping()
    milvus.ensure_collection(CollectionSpec("to_drop", 4))
    milvus.drop_collection("to_drop")
    with pytest.raises(CollectionNotFound):
        milvus.stats("to_drop")


def test_milvus_server_reached_through_milvus_host(tmp_path: Path) -> None:
    """`MILVUS_HOST`/`MILVUS_PORT` select a server; here `milvus-lite server` stands in for Milvus."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "milvus-lite"),
        "server",
        "--data-dir",
        str(tmp_path / "srv"),
    ]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        settings = Settings(data_dir=tmp_path, milvus_host="127.0.0.1", milvus_port=port)
        uri = milvus_uri(MilvusOptions(), settings, OutboundPolicy.from_settings(settings))
        assert uri == f"http://127.0.0.1:{port}"
        remote = MilvusStore(uri, embedder=create_embedder(EmbeddingConfig()))
        deadline = time.monotonic() + 60
        while True:
            try:
                remote.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                remote.close()
                time.sleep(0.5)
        remote.ensure_collection(CollectionSpec("served", 256))
        remote.write_data(data=_frame(), table_name="served")
        assert remote.query("served", text="bread", top_k=1)[0].id == "c2"
        remote.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


IDLE_CLIENT = """
import sys, time
from aietl.services.vector_sink.connectors import milvus
milvus.QUIET_KEEPALIVE = {
    **milvus.QUIET_KEEPALIVE, "grpc.keepalive_time_ms": 500, "grpc.http2.max_pings_without_data": 0
}
if sys.argv[2] == "pings-when-idle":
    milvus.QUIET_KEEPALIVE["grpc.keepalive_permit_without_calls"] = 1
store = milvus.MilvusStore(sys.argv[1])
store.ping()
time.sleep(4)
store.ping()
store.close()
"""


def test_idle_client_does_not_ping_milvus_lite_into_goaway(tmp_path: Path) -> None:
    """Milvus Lite's gRPC server allows one ping per 5 minutes without data; pymilvus's default
    (pings every 10 s, also when idle) made it answer GOAWAY `too_many_pings` and fail a call in
    CI. Shown at 2 pings per second, nothing else changed: the store's settings stay quiet, pinging
    when idle is sent away."""
    arms = {
        arm: subprocess.Popen(
            [sys.executable, "-c", IDLE_CLIENT, str(tmp_path / arm / "lite.db"), arm],
            stderr=subprocess.PIPE,
            text=True,
        )
        for arm in ("store-settings", "pings-when-idle")
    }
    errors = {arm: process.communicate(timeout=120)[1] for arm, process in arms.items()}
    assert arms["store-settings"].returncode == 0, errors["store-settings"]
    assert "too_many_pings" in errors["pings-when-idle"], errors["pings-when-idle"]
    assert "too_many_pings" not in errors["store-settings"], errors["store-settings"]
