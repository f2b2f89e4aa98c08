"""The Pinecone connector with the real SDK against a FAKE data plane (wire contract only), and a
live test against Pinecone itself when PINECONE_API_KEY (and PINECONE_INDEX_HOST) are set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import PineconeOptions, split_secrets
from aietl.services.vector_sink.connectors.base import UnsupportedOperation
from aietl.services.vector_sink.connectors.pinecone import PineconeStore, to_pinecone
from aietl.services.vector_sink.domain.filters import Compare, parse_filter
from aietl.services.vector_sink.domain.ids import doc_key
from aietl.services.vector_sink.domain.model import CollectionSpec, Document
from aietl.services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from aietl.services.vector_sink.service import service_of
from tests.vector_sink.fakes.pinecone_fake import FakePinecone

DIM = 256


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePinecone]:
    with FakePinecone(DIM) as server:
        yield server


@pytest.fixture
def pinecone(fake: FakePinecone) -> Iterator[PineconeStore]:
    connector = PineconeStore(fake.api_key, index_host=fake.url, embedder=create_embedder(EmbeddingConfig()))
    connector.connect()
    yield connector
    connector.close()


def _rows(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "id": [f"{doc_key('d' + str(i % 3))}:{i:05d}:x" for i in range(n)],
            "embedding": list(rng.normal(size=(n, DIM)).astype(np.float32)),
            "text": [f"chunk {i}" for i in range(n)],
            "doc_id": [f"d{i % 3}" for i in range(n)],
            "year": [2000 + i for i in range(n)],
            "lang": ["en" if i % 2 else None for i in range(n)],
        }
    )


def test_filters_translate_to_pinecone_form() -> None:
    """The parsed filter tree goes back to Pinecone's explicit-operator form (lists for tuples)."""
    assert to_pinecone(Compare("lang", "$in", ("de", "fr"))) == {"lang": {"$in": ["de", "fr"]}}
    parsed = parse_filter({"year": {"$gte": 2020}, "draft": {"$exists": False}})
    assert parsed is not None
    assert to_pinecone(parsed) == {"$and": [{"year": {"$gte": 2020}}, {"draft": {"$exists": False}}]}


def test_write_query_filter_delete_round_trip(pinecone: PineconeStore, fake: FakePinecone) -> None:
    name = f"ns-{uuid.uuid4().hex[:6]}"
    assert pinecone.ensure_collection(CollectionSpec(name, DIM)).dimension == DIM
    rows = _rows(300)
    assert pinecone.write_data(data=rows, table_name=name, mode="upsert") == 300
    assert pinecone.stats(name).count == 300
    assert ("POST", "/vectors/upsert") in fake.requests

    target = rows.iloc[7]
    hits = pinecone.query(name, vector=[float(x) for x in target.embedding], top_k=3)
    assert hits[0].id == target.id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].text == "chunk 7" and hits[0].metadata["doc_id"] == "d1" and "text" not in hits[0].metadata
    assert hits[0].score > hits[1].score

    probe = [float(x) for x in rows.iloc[0].embedding]
    cases: dict[str, tuple[dict[str, Any], int]] = {
        "year >= 2290": ({"year": {"$gte": 2290}}, 10),
        "$in": ({"doc_id": {"$in": ["d0", "d2"]}, "year": {"$lt": 2030}}, 20),
        "$exists false": ({"lang": {"$exists": False}}, 150),
        "$or": ({"$or": [{"year": 2000}, {"year": {"$gt": 2297}}]}, 3),
        "$ne + $nin": ({"doc_id": {"$ne": "d0", "$nin": ["d1"]}}, 100),
        "$and + $lte": ({"$and": [{"lang": "en"}, {"year": {"$lte": 2009}}]}, 5),
    }
    for label, (spec, expected) in cases.items():
        assert len(pinecone.query(name, vector=probe, top_k=1000, filter=spec)) == expected, label

    assert len(pinecone.document_ids(name, "d0")) == 100  # paginated listing by id prefix
    pinecone.delete(name, ids=rows.id[:10].tolist())
    pinecone.delete(name, filter={"doc_id": "d2"})
    assert pinecone.stats(name).count == 300 - 10 - 97
    pinecone.write_data(data=rows.head(5), table_name=name, mode="overwrite")
    assert pinecone.stats(name).count == 5


def test_text_query_hybrid_and_errors(pinecone: PineconeStore, fake: FakePinecone) -> None:
    name = f"ns-{uuid.uuid4().hex[:6]}"
    pinecone.ensure_collection(CollectionSpec(name, DIM))
    pinecone.write_data(
        data=pd.DataFrame({"id": ["a", "b"], "text": ["reset your password", "bake sourdough bread"]}),
        table_name=name,
    )
    assert pinecone.query(name, text="forgotten password", top_k=1)[0].id == "a"
    with pytest.raises(UnsupportedOperation):
        pinecone.query(name, text="password", hybrid=True)
    with pytest.raises(ValueError, match="dimension 2"):
        pinecone.query(name, vector=[1.0, 0.0])
    wrong_key = PineconeStore("wrong", index_host=fake.url)
    with pytest.raises(Exception, match=r"401|Unauthorized|Invalid API Key"):
        wrong_key.ping()


async def test_service_reingestion_through_pinecone(runtime: Runtime, fake: FakePinecone) -> None:
    service = service_of(runtime)
    plain, secrets = split_secrets(PineconeOptions(index_host=fake.url, api_key=fake.api_key, chunk_size=200))
    async with runtime.database.transaction() as session:
        row = await store.add_connector(
            session,
            "default",
            f"pc-{uuid.uuid4().hex[:6]}",
            "pinecone",
            plain,
            sorted(secrets),
            service.secret_box.seal(secrets),
        )
    collection = f"docs-{uuid.uuid4().hex[:6]}"
    text = "\n\n".join(f"Paragraph {i} about vector databases and retrieval. " * 3 for i in range(6))
    await service.ingest(
        "default", row.id, collection, [Document("doc", text=text), Document("other", text="short")]
    )
    first = await service.stored_ids("default", row.id, collection, "doc")
    report = await service.ingest(
        "default",
        row.id,
        collection,
        [Document("doc", text=text + " More."), Document("other", operation="delete")],
    )
    assert report.changed_documents == 1 and report.deleted_documents == 1 and report.embedded_texts == 1
    second = await service.stored_ids("default", row.id, collection, "doc")
    assert len(second) == len(first) and len(second - first) == 1
    assert await service.stored_ids("default", row.id, collection, "other") == set()
    hits = await service.search(
        "default", row.id, collection, query="retrieval", top_k=2, filter={"doc_id": "doc"}
    )
    assert len(hits) == 2 and all(h.metadata["doc_id"] == "doc" for h in hits)


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("PINECONE_API_KEY") and os.environ.get("PINECONE_INDEX_HOST")),
    reason="live Pinecone test: set PINECONE_API_KEY and PINECONE_INDEX_HOST",
)
def test_live_pinecone_round_trip() -> None:
    live = PineconeStore(os.environ["PINECONE_API_KEY"], index_host=os.environ["PINECONE_INDEX_HOST"])
    name = f"aietl-test-{uuid.uuid4().hex[:8]}"
    spec = live.ensure_collection(CollectionSpec(name, 1))
    vector = list(np.ones(spec.dimension) / np.sqrt(spec.dimension))
    live.write_data(data=pd.DataFrame({"id": ["x"], "embedding": [vector], "doc_id": ["d"]}), table_name=name)
    try:
        import time

        deadline = time.monotonic() + 60
        while not live.query(name, vector=vector, top_k=1) and time.monotonic() < deadline:
            time.sleep(1)  # Pinecone is eventually consistent
        assert live.query(name, vector=vector, top_k=1, filter={"doc_id": "d"})[0].id == "x"
    finally:
        live.drop_collection(name)
