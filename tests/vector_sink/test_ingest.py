"""Ingestion through the service against Milvus Lite: idempotent reloads leave nothing stale."""

from __future__ import annotations

import random
import uuid

import pytest

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import MilvusOptions, split_secrets
from aietl.services.vector_sink.domain.chunking import ChunkingPolicy
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.model import Document
from aietl.services.vector_sink.domain.planning import make_chunks
from aietl.services.vector_sink.service import VectorSinkService, service_of

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
]


def _text(rng: random.Random, paragraphs: int = 3) -> str:
    return "\n\n".join(
        f"## Part {p}\n\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 160)))
        for p in range(paragraphs)
    )


async def _connector(runtime: Runtime, project_id: str, **options: object) -> str:
    service = service_of(runtime)
    plain, secrets = split_secrets(MilvusOptions(chunk_size=300, chunk_overlap=40, **options))
    async with runtime.database.transaction() as session:
        row = await store.add_connector(
            session,
            project_id,
            f"m-{uuid.uuid4().hex[:8]}",
            "milvus",
            plain,
            sorted(secrets),
            service.secret_box.seal(secrets),
        )
    return row.id


async def _assert_store_matches_records(
    service: VectorSinkService, project_id: str, connector_id: str, collection: str, doc_ids: list[str]
) -> int:
    async with service.runtime.database.sessions() as session:
        records = await store.document_records(session, project_id, connector_id, collection, doc_ids)
    total = 0
    for doc_id in doc_ids:
        stored = await service.stored_ids(project_id, connector_id, collection, doc_id)
        expected = set(records[doc_id].chunk_ids) if doc_id in records else set()
        assert stored == expected, doc_id
        assert not (records[doc_id].pending_ids if doc_id in records else set())
        total += len(stored)
    connector = await service.connector(project_id, connector_id)
    stats = connector.store.stats(scoped_collection(project_id, collection))
    assert stats.count == total  # no orphan from any document, recorded or not
    return total


async def test_reload_with_changes_and_deletions_leaves_no_stale_vectors(runtime: Runtime) -> None:
    service = service_of(runtime)
    project_id, collection = "default", f"reload-{uuid.uuid4().hex[:6]}"
    connector_id = await _connector(runtime, project_id)
    rng = random.Random(7)
    documents = [Document(f"doc-{i}", text=_text(rng), metadata={"n": i}, source="wiki") for i in range(100)]

    first = await service.ingest(project_id, connector_id, collection, documents)
    assert first.changed_documents == 100 and not first.rejected
    chunks_first = await _assert_store_matches_records(
        service, project_id, connector_id, collection, [d.doc_id for d in documents]
    )
    assert first.written_chunks == chunks_first

    changed = set(rng.sample(range(100), 5))  # 5 %
    deleted = set(rng.sample(sorted(set(range(100)) - changed), 1))  # 1 %
    reload: list[Document] = []
    for i, doc in enumerate(documents):
        if i in deleted:
            reload.append(Document(doc.doc_id, operation="delete"))
        elif i in changed:  # one paragraph edited: the other chunks keep their ids and embeddings
            reload.append(
                Document(
                    doc.doc_id, text=f"{doc.text} appended sentence", metadata=doc.metadata, source="wiki"
                )
            )
        else:
            reload.append(doc)
    second = await service.ingest(project_id, connector_id, collection, reload)
    policy = ChunkingPolicy(300, 40)
    assert (second.changed_documents, second.deleted_documents, second.unchanged_documents) == (5, 1, 94)
    changed_chunks = sum(len(make_chunks(reload[i], policy)) for i in changed)
    assert 5 <= second.embedded_texts < changed_chunks / 2  # only edited chunks of changed documents
    assert second.written_chunks == second.embedded_texts + second.cache_hits
    await _assert_store_matches_records(
        service, project_id, connector_id, collection, [d.doc_id for d in documents]
    )
    for i in deleted:
        assert await service.stored_ids(project_id, connector_id, collection, f"doc-{i}") == set()

    third = await service.ingest(project_id, connector_id, collection, reload)  # the same again: nothing
    assert (third.written_chunks, third.deleted_chunks, third.embedded_texts) == (0, 0, 0)
    assert third.unchanged_documents == 99


async def test_interrupted_run_is_repaired_by_the_next(runtime: Runtime) -> None:
    """A run that wrote new chunks but died before deleting the old ones leaves nothing behind."""
    service = service_of(runtime)
    project_id, collection = "default", f"crash-{uuid.uuid4().hex[:6]}"
    connector_id = await _connector(runtime, project_id)
    await service.ingest(project_id, connector_id, collection, [Document("d", text="first version " * 40)])
    connector = await service.connector(project_id, connector_id)
    original_delete = connector.store.delete

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    connector.store.delete = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await service.ingest(
            project_id, connector_id, collection, [Document("d", text="second version " * 40)]
        )
    connector.store.delete = original_delete  # type: ignore[method-assign]
    stored = await service.stored_ids(project_id, connector_id, collection, "d")
    assert len(stored) > 1  # both versions are in the store now

    await service.ingest(project_id, connector_id, collection, [Document("d", text="third version " * 40)])
    await _assert_store_matches_records(service, project_id, connector_id, collection, ["d"])


async def test_bad_documents_are_rejected_and_the_rest_proceed(runtime: Runtime) -> None:
    service = service_of(runtime)
    project_id, collection = "default", f"bad-{uuid.uuid4().hex[:6]}"
    connector_id = await _connector(runtime, project_id)
    report = await service.ingest(
        project_id,
        connector_id,
        collection,
        [
            Document("good", text="a fine document"),
            Document("own-vector", text="caption", embedding=[0.0625] * 256),
            Document("empty"),
            Document("short-vector", embedding=[1.0, 2.0]),
            Document("huge", text="x" * (service.limits.max_text_bytes + 1)),
        ],
    )
    assert {r.doc_id for r in report.rejected} == {"empty", "short-vector", "huge"}
    assert report.changed_documents == 2
    await _assert_store_matches_records(service, project_id, connector_id, collection, ["good", "own-vector"])
    hits = await service.search(project_id, connector_id, collection, query="a fine document", top_k=1)
    assert hits[0].metadata["doc_id"] == "good" and hits[0].metadata["chunk_index"] == 0


async def test_embedding_cache_is_shared_across_collections(runtime: Runtime) -> None:
    service = service_of(runtime)
    connector_id = await _connector(runtime, "default")
    text = f"cached text {uuid.uuid4()}"
    first = await service.ingest(
        "default", connector_id, f"c1-{uuid.uuid4().hex[:6]}", [Document("a", text=text)]
    )
    second = await service.ingest(
        "default", connector_id, f"c2-{uuid.uuid4().hex[:6]}", [Document("b", text=text)]
    )
    assert (first.embedded_texts, first.cache_hits) == (1, 0)
    assert (second.embedded_texts, second.cache_hits) == (0, 1)
