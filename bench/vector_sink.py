"""Vector sink figures, all on Milvus Lite (the embedded default) and the committed local model.

- upsert rate of 384-d vectors, twice: pymilvus' `upsert` alone (rows with float32 arrays: the
  ceiling) and the connector's `write_data` as ingestion calls it (DataFrame batches, one flush at
  the end); both also per CPU-second of this process (Milvus Lite serves from a thread of it), a
  figure that depends less on what else the machine runs;
- embedding rate of the default model (model2vec static model distilled from all-MiniLM-L6-v2);
- search latency p50/p99 with a metadata filter;
- a reload of 1,000 documents with 5 % changed and 1 % deleted: how many chunk embeddings were
  reused rather than recomputed, and a check that the store holds exactly the recorded ids.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.runtime import Runtime
from services.vector_sink import store
from services.vector_sink.config import MilvusOptions, split_secrets
from services.vector_sink.connectors.milvus import MilvusStore
from services.vector_sink.domain import CollectionSpec, Document, scoped_collection
from services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from services.vector_sink.service import service_of
from shared.migrate import upgrade_async
from shared.settings import Settings

VECTORS = 50_000
DIMENSION = 384
UPSERT_BATCH = 5_000
TEXTS = 20_000
QUERIES = 300
DOCUMENTS = 1_000
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


def _rates(prefix: str, seconds: float, cpu_seconds: float) -> dict[str, int]:
    return {
        f"{prefix}_vectors_per_s": round(VECTORS / seconds),
        f"{prefix}_vectors_per_cpu_s": round(VECTORS / cpu_seconds),
    }


def _upsert_and_search(folder: Path) -> dict[str, Any]:
    milvus = MilvusStore(str(folder / "bench.db"))
    milvus.connect()
    for name in ("raw", "bench"):
        milvus.ensure_collection(CollectionSpec(name, DIMENSION, "cosine", {"bucket": "int"}))
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(VECTORS, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "id": [f"v{i}" for i in range(VECTORS)],
            "embedding": list(vectors),
            "text": [f"row {i}" for i in range(VECTORS)],
            "doc_id": [f"d{i // 10}" for i in range(VECTORS)],
            "bucket": [i % 100 for i in range(VECTORS)],
        }
    )
    rows = [
        {**row, "embedding": vectors[i]}
        for i, row in enumerate(frame.drop(columns="embedding").to_dict("records"))
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, VECTORS, UPSERT_BATCH):
        milvus.client.upsert("raw", rows[start : start + UPSERT_BATCH])
    milvus.client.flush("raw")
    raw = _rates("milvus_lite_raw_upsert", time.perf_counter() - started, time.process_time() - cpu)

    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, VECTORS, UPSERT_BATCH):
        milvus.write_data(frame.iloc[start : start + UPSERT_BATCH], "bench", "upsert", flush=False)
    milvus.flush("bench")
    ours = _rates("milvus_lite_write_data", time.perf_counter() - started, time.process_time() - cpu)

    latencies = []
    for i in range(QUERIES):
        query = [float(x) for x in vectors[(i * 7919) % VECTORS]]
        began = time.perf_counter()
        hits = milvus.query(
            "bench", vector=query, top_k=10, filter={"bucket": {"$in": [i % 100, (i + 1) % 100]}}
        )
        latencies.append(time.perf_counter() - began)
        assert hits and all(h.metadata["bucket"] in (i % 100, (i + 1) % 100) for h in hits)
    milvus.close()
    latencies.sort()
    return {
        **raw,
        **ours,
        "milvus_lite_upsert_dimension": DIMENSION,
        "milvus_lite_upsert_batch": UPSERT_BATCH,
        "search_filtered_p50_ms": round(1000 * statistics.median(latencies), 2),
        "search_filtered_p99_ms": round(1000 * latencies[int(0.99 * len(latencies)) - 1], 2),
        "search_collection_size": VECTORS,
    }


def _embedding_rate() -> dict[str, Any]:
    embedder = create_embedder(EmbeddingConfig())
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) + f" {i}" for i in range(TEXTS)]
    embedder.embed(texts[:100])  # warm up
    started = time.perf_counter()
    embedder.embed(texts)
    seconds = time.perf_counter() - started
    return {
        "embedding_model": embedder.name,
        "embedding_dimension": embedder.dimension,
        "embedding_texts_per_s": round(TEXTS / seconds),
        "embedding_text_words": 60,
    }


async def _reload(folder: Path) -> dict[str, Any]:
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

        documents = [Document(f"doc-{i}", text=text(), source="bench") for i in range(DOCUMENTS)]
        started = time.perf_counter()
        first = await service.ingest("default", row.id, "docs", documents)
        first_seconds = time.perf_counter() - started

        changed = set(rng.sample(range(DOCUMENTS), DOCUMENTS // 20))
        deleted = set(rng.sample(sorted(set(range(DOCUMENTS)) - changed), DOCUMENTS // 100))
        reload = [
            Document(d.doc_id, operation="delete")
            if i in deleted
            else Document(d.doc_id, text=d.text + " edited", source="bench")
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
            "reload_documents": DOCUMENTS,
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


def run() -> dict[str, object]:
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        figures.update(_embedding_rate())
        figures.update(_upsert_and_search(Path(folder)))
        figures.update(asyncio.run(_reload(Path(folder) / "reload")))
    return figures
