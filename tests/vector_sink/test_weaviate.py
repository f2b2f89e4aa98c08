"""The Weaviate connector with the real weaviate-client v4 against a FAKE of its REST + gRPC calls.

This checks the wire contract only (the client's requests decode, our replies parse); it says
nothing about a real Weaviate's behaviour. The live test runs when WEAVIATE_URL is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.config import WeaviateOptions, split_secrets
from aietl.services.vector_sink.connectors.weaviate import WeaviateStore
from aietl.services.vector_sink.domain.model import CollectionSpec, Document
from aietl.services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from aietl.services.vector_sink.service import service_of
from tests.vector_sink.fakes.weaviate_fake import FakeWeaviate

API_KEY = "weaviate-test-key"
TEXTS = ["password reset steps", "weather in paris", "how to bake bread", "kubernetes memory limits"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeWeaviate]:
    with FakeWeaviate(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def weaviate(fake: FakeWeaviate) -> Iterator[WeaviateStore]:
    connector = WeaviateStore(
        fake.url, "127.0.0.1", fake.grpc_port, API_KEY, create_embedder(EmbeddingConfig())
    )
    connector.connect()
    yield connector
    connector.close()


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(4)],
            "text": TEXTS,
            "doc_id": ["auth", "travel", "food", "ops"],
            "year": [2020, 2021, 2022, 2023],
            "lang": ["en", None, "de", "en"],
        }
    )


def test_collection_write_query_delete(weaviate: WeaviateStore, fake: FakeWeaviate) -> None:
    name = f"c_{uuid.uuid4().hex[:8]}"
    spec = weaviate.ensure_collection(CollectionSpec(name, 256, "cosine", {"year": "int"}))
    assert spec == CollectionSpec(name, 256, "cosine", {"year": "int"})
    assert weaviate.ensure_collection(CollectionSpec(name, 256, "l2")) == spec  # the existing one wins
    assert weaviate.write_data(data=_frame(), table_name=name) == 4
    assert weaviate.stats(name).count == 4
    assert {"BatchObjects", "Aggregate"} <= set(fake.calls)

    hits = weaviate.query(name, text="I forgot my password", top_k=2)
    assert hits[0].id == "c0" and hits[0].text == TEXTS[0] and hits[0].metadata["year"] == 2020
    assert hits[0].score > hits[1].score
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"year": {"$gte": 2022}}, {"c2", "c3"}),
        ({"lang": {"$in": ["de"]}}, {"c2"}),
        ({"lang": {"$exists": False}}, {"c1"}),
        ({"year": {"$nin": [2020, 2021]}, "$or": [{"doc_id": "food"}, {"lang": "en"}]}, {"c2", "c3"}),
        ({"year": {"$ne": 2020, "$lt": 2022}}, {"c1"}),
    ]
    for spec_filter, expected in cases:
        assert {h.id for h in weaviate.query(name, text="x", top_k=10, filter=spec_filter)} == expected

    hybrid = weaviate.query(name, text="bake bread", top_k=2, hybrid=True, filter={"year": {"$gt": 2020}})
    assert hybrid[0].id == "c2"

    assert weaviate.document_ids(name, "auth") == {"c0"}
    weaviate.delete(name, ids=["c0"])
    weaviate.delete(name, filter={"doc_id": "travel"})
    assert weaviate.stats(name).count == 2 and weaviate.document_ids(name, "auth") == set()
    weaviate.write_data(data=_frame().head(1), table_name=name, mode="overwrite")
    assert weaviate.stats(name).count == 1
    weaviate.drop_collection(name)


def test_wrong_api_key_is_refused(fake: FakeWeaviate) -> None:
    with pytest.raises(Exception, match=r"401|anonymous"):
        WeaviateStore(fake.url, "127.0.0.1", fake.grpc_port, "wrong").ensure_collection(
            CollectionSpec("c_y", 4)
        )


async def test_service_reingestion_through_weaviate(runtime: Runtime, fake: FakeWeaviate) -> None:
    service = service_of(runtime)
    options = WeaviateOptions(url=fake.url, grpc_host="127.0.0.1", grpc_port=fake.grpc_port, api_key=API_KEY)
    plain, secrets = split_secrets(options)
    async with runtime.database.transaction() as session:
        row = await store.add_connector(
            session,
            "default",
            f"wv-{uuid.uuid4().hex[:6]}",
            "weaviate",
            plain,
            sorted(secrets),
            service.secret_box.seal(secrets),
        )
    collection = f"docs-{uuid.uuid4().hex[:6]}"
    text = "\n\n".join(f"## Section {i}\n\n" + "retrieval augmented generation " * 12 for i in range(4))
    first = await service.ingest("default", row.id, collection, [Document("doc", text=text, author="ann")])
    ids = await service.stored_ids("default", row.id, collection, "doc")
    assert len(ids) == first.written_chunks > 1
    again = await service.ingest("default", row.id, collection, [Document("doc", text=text, author="bob")])
    assert again.embedded_texts == 0 and again.cache_hits == len(ids)  # metadata change: same vectors
    assert (await service.stored_ids("default", row.id, collection, "doc")).isdisjoint(ids)
    hits = await service.search("default", row.id, collection, query="retrieval", top_k=1, hybrid=True)
    assert hits[0].metadata["author"] == "bob"


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("WEAVIATE_URL"), reason="live Weaviate test: set WEAVIATE_URL")
def test_live_weaviate_round_trip() -> None:
    live = WeaviateStore(os.environ["WEAVIATE_URL"], api_key=os.environ.get("WEAVIATE_API_KEY"))
    name = f"c_aietl_test_{uuid.uuid4().hex[:8]}"
    live.ensure_collection(CollectionSpec(name, 3))
    try:
        live.write_data(
            data=pd.DataFrame({"id": ["a"], "embedding": [[1.0, 0.0, 0.0]], "text": ["x"], "doc_id": ["d"]}),
            table_name=name,
        )
        assert live.query(name, vector=[1.0, 0.0, 0.0], top_k=1, filter={"doc_id": "d"})[0].id == "a"
        assert live.document_ids(name, "d") == {"a"}
    finally:
        live.drop_collection(name)
        live.close()
