"""Vector sink figures, all on Milvus Lite (the embedded default) and the committed local model.

- upsert rate of 384-d vectors, ours against the peer (`bench.compare`, interleaved rounds, each
  into a fresh collection): pymilvus' `upsert` alone (rows with float32 arrays: the ceiling) and
  the connector's `write_data` as ingestion calls it (DataFrame batches, one flush at the end); both
  also per CPU-second of this process (Milvus Lite serves from a thread of it);
- embedding rate of the default model (model2vec static model distilled from all-MiniLM-L6-v2);
- search latency p50/p99 with a metadata filter;
- a reload of 1,000 documents with 5 % changed and 1 % deleted: how many chunk embeddings were
  reused rather than recomputed, and a check that the store holds exactly the recorded ids.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import MilvusOptions, split_secrets
from aietl.services.vector_sink.connectors.milvus import MilvusStore
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.model import CollectionSpec, Document
from aietl.services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from aietl.services.vector_sink.service import service_of
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from bench import Scale
from bench.compare import Case, Measurement, compare
from bench.sides import quantile

DIMENSION = 384
UPSERT_BATCH = 5_000
WORDS = [
    "data",
    "pipeline",
    "vector",
    "search",
    "schema",
    "drift",
    "feature",
    "store",
    "model",
    "embedding",
    "chunk",
    "index",
    "query",
    "latency",
    "throughput",
    "kafka",
    "partition",
    "consumer",
    "offset",
    "replica",
    "broker",
    "table",
    "column",
    "migration",
]


class _Upserts:
    """One side of the upsert comparison: `write(collection, start, stop)` writes rows of the frame;
    every round goes into a fresh collection."""

    def __init__(self, name: str, milvus: MilvusStore, write: Any, vectors: int) -> None:
        self.name, self.milvus, self.write, self.vectors, self.rounds = name, milvus, write, vectors, 0

    def measure(self, _case: str, _repeat: int) -> Measurement:
        self.rounds += 1
        collection = f"{self.name}_{self.rounds}"
        self.milvus.ensure_collection(CollectionSpec(collection, DIMENSION, "cosine", {"bucket": "int"}))
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, self.vectors, UPSERT_BATCH):
            self.write(collection, start, min(start + UPSERT_BATCH, self.vectors))
        self.milvus.flush(collection)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        rows = self.milvus.stats(collection).count
        self.milvus.drop_collection(collection)
        return Measurement(
            rate=self.vectors / seconds, cpu_seconds=cpu_seconds / self.vectors, info={"rows_stored": rows}
        )


def _upsert_and_search(folder: Path, scale: Scale) -> dict[str, Any]:
    vectors_count, queries = scale.count(50_000, smoke=500), scale.count(300, smoke=10)
    milvus = MilvusStore(str(folder / "bench.db"))
    milvus.connect()
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(vectors_count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "id": [f"v{i}" for i in range(vectors_count)],
            "embedding": list(vectors),
            "text": [f"row {i}" for i in range(vectors_count)],
            "doc_id": [f"d{i // 10}" for i in range(vectors_count)],
            "bucket": [i % 100 for i in range(vectors_count)],
        }
    )
    rows = [
        {**row, "embedding": vectors[i]}
        for i, row in enumerate(frame.drop(columns="embedding").to_dict("records"))
    ]
    ours = _Upserts(
        "write_data",
        milvus,
        lambda name, start, stop: milvus.write_data(frame.iloc[start:stop], name, "upsert", flush=False),
        vectors_count,
    )
    raw = _Upserts(
        "raw_pymilvus",
        milvus,
        lambda name, start, stop: milvus.client.upsert(name, rows[start:stop]),
        vectors_count,
    )
    upserts = compare(ours, raw, [Case("upsert", 1, kind="rate")], scale.rounds)

    milvus.ensure_collection(CollectionSpec("bench", DIMENSION, "cosine", {"bucket": "int"}))
    for start in range(0, vectors_count, UPSERT_BATCH):
        milvus.write_data(frame.iloc[start : start + UPSERT_BATCH], "bench", "upsert", flush=False)
    milvus.flush("bench")
    latencies = []
    for i in range(queries):
        query = [float(x) for x in vectors[(i * 7919) % vectors_count]]
        began = time.perf_counter()
        hits = milvus.query(
            "bench", vector=query, top_k=10, filter={"bucket": {"$in": [i % 100, (i + 1) % 100]}}
        )
        latencies.append(time.perf_counter() - began)
        assert hits and all(h.metadata["bucket"] in (i % 100, (i + 1) % 100) for h in hits)
    milvus.close()
    return {
        "upsert_vs_raw_pymilvus": upserts,
        "milvus_lite_upsert_dimension": DIMENSION,
        "milvus_lite_upsert_batch": UPSERT_BATCH,
        "milvus_lite_upsert_vectors": vectors_count,
        "upsert_goal_per_s": 5_000,
        "search_filtered_p50_ms": round(1000 * quantile(latencies, 0.50), 2),
        "search_filtered_p99_ms": round(1000 * quantile(latencies, 0.99), 2),
        "search_collection_size": vectors_count,
    }


def _embedding_rate(count: int) -> dict[str, Any]:
    embedder = create_embedder(EmbeddingConfig())
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) + f" {i}" for i in range(count)]
    embedder.embed(texts[:100])  # warm up
    started = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - started
    return {
        "embedding_model": embedder.name,
        "embedding_dimension": embedder.dimension,
        "embedding_texts_per_s": round(count / seconds),
        "embedding_text_words": 60,
    }


async def _reload(folder: Path, documents_count: int) -> dict[str, Any]:
    settings = Settings(environment="test", data_dir=folder)
    settings.ensure_data_dir()
    await upgrade_async(settings.resolved_database_url)
    runtime = Runtime(settings, client_id="bench")
    try:
        service = service_of(runtime)
        plain, _ = split_secrets(MilvusOptions(chunk_size=400, chunk_overlap=60))
        async with runtime.database.transaction() as session:
            row = await store.add_connector(session, "default", "bench", "milvus", plain, [], None)
        rng = random.Random(3)

        def text() -> str:
            return "\n\n".join(
                f"## Part {p}\n\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 200)))
                for p in range(4)
            )

        documents = [Document(f"doc-{i}", text=text(), source="bench") for i in range(documents_count)]
        started = time.perf_counter()
        first = await service.ingest("default", row.id, "docs", documents)
        first_seconds = time.perf_counter() - started

        changed = set(rng.sample(range(documents_count), max(1, documents_count // 20)))
        deleted = set(
            rng.sample(sorted(set(range(documents_count)) - changed), max(1, documents_count // 100))
        )
        reload = [
            Document(d.doc_id, operation="delete")
            if i in deleted
            else Document(d.doc_id, text=f"{d.text} edited", source="bench")
            if i in changed
            else d
            for i, d in enumerate(documents)
        ]
        started = time.perf_counter()
        second = await service.ingest("default", row.id, "docs", reload)
        reload_seconds = time.perf_counter() - started

        async with runtime.database.sessions() as session:
            records = await store.document_records(
                session, "default", row.id, "docs", [d.doc_id for d in documents]
            )
        connector = await service.connector("default", row.id)
        name = scoped_collection("default", "docs")
        mismatched = 0
        for document in documents:
            stored = connector.store.document_ids(name, document.doc_id)
            expected = set(records[document.doc_id].chunk_ids) if document.doc_id in records else set()
            mismatched += stored != expected
        recorded = sum(len(r.chunk_ids) for r in records.values())
        orphans = connector.store.stats(name).count - recorded
        reload_chunks = recorded  # every chunk the reloaded collection holds
        return {
            "reload_documents": documents_count,
            "reload_changed_documents": second.changed_documents,
            "reload_deleted_documents": second.deleted_documents,
            "reload_unchanged_documents_skipped": second.unchanged_documents,
            "initial_load_chunks": first.written_chunks,
            "initial_load_chunks_per_s": round(first.written_chunks / first_seconds),
            "reload_seconds": round(reload_seconds, 3),
            "reload_chunks_embedded": second.embedded_texts,
            "reload_chunks_written": second.written_chunks,
            "reload_stale_chunks_deleted": second.deleted_chunks,
            "reload_embedding_reuse_rate": round(1 - second.embedded_texts / reload_chunks, 4),
            "reload_documents_with_store_record_mismatch": mismatched,
            "reload_orphan_vectors": orphans,
        }
    finally:
        await runtime.close()


def run(scale: Scale) -> dict[str, object]:
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        figures.update(_embedding_rate(scale.count(20_000, smoke=200)))
        figures.update(_upsert_and_search(Path(folder), scale))
        figures.update(asyncio.run(_reload(Path(folder) / "reload", scale.count(1_000, smoke=20))))
    return figures
