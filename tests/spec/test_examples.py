"""The specification's own REST examples (`advanced-features-guide.md`), replayed as a new user types
them: the request bodies below are copied from it verbatim, as data. Each must answer 2xx and have
the effect the specification describes."""

from __future__ import annotations

import httpx

from aietl.shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.vector_sink.fakes.pinecone_fake import FakePinecone

Headers = dict[str, str]

FEATURE_REGISTER = {
    "name": "user_transaction_count_7d",
    "feature_type": "int",
    "entity": "user",
    "source": "transactions",
    "storage_type": "both",
}
FEATURE_WRITE = {
    "features": [
        {
            "feature_name": "user_transaction_count_7d",
            "entity_id": "user_123",
            "value": 42,
            "timestamp": "2025-01-20T10:00:00Z",
        }
    ],
    "storage": "both",
}
FEATURE_GET_ONLINE = {"feature_names": ["user_transaction_count_7d"], "entity_ids": ["user_123", "user_456"]}


async def test_feature_store_examples(
    client: httpx.AsyncClient, project_user: tuple[str, Headers], settings: Settings
) -> None:
    _, headers = project_user
    api = "/api/v1/advanced/features"
    registered = await client.post(f"{api}/register", json=FEATURE_REGISTER, headers=headers)
    assert registered.status_code == 201, registered.text
    assert registered.json()["feature_type"] == "int64"
    written = await client.post(f"{api}/write", json=FEATURE_WRITE, headers=headers)
    assert written.status_code == 200, written.text
    assert written.json() == {"written": {"online": 1, "offline": 1}}

    online = await client.post(f"{api}/get-online", json=FEATURE_GET_ONLINE, headers=headers)
    assert online.status_code == 200, online.text
    vectors = {row["entity_id"]: row for row in online.json()["feature_vectors"]}
    # The example's value is from 2025 and its feature lives a day (FEATURE_STORE_TTL_SECONDS): the
    # online store says so rather than serving it (Redis has dropped the key at once: missing);
    # user_456 was never written.
    redis = settings.resolved_features_online_store.startswith("redis")
    expired = "missing" if redis else "expired"
    assert vectors["user_123"]["statuses"] == {"user_transaction_count_7d": expired}
    assert vectors["user_123"]["features"] == {"user_transaction_count_7d": None}
    assert vectors["user_456"]["statuses"] == {"user_transaction_count_7d": "missing"}
    at_the_time = await client.post(
        f"{api}/historical",
        json={
            "feature_names": ["user_transaction_count_7d"],
            "entity_rows": [{"entity_id": "user_123", "timestamp": "2025-01-20T12:00:00Z"}],
        },
        headers=headers,
    )
    assert at_the_time.status_code == 200, at_the_time.text
    assert at_the_time.json()["rows"][0]["features"] == {"user_transaction_count_7d": 42}


PINECONE_CONNECTOR = {
    "type": "pinecone",
    "api_key": "pk-...",
    "environment": "us-west1-gcp",
    "index_name": "documents",
    "dimension": 1536,
    "metric": "cosine",
}


async def test_pinecone_connector_configuration(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    """Section 1's configuration is accepted as written; its `dimension` is the index's, so texts
    the local 256-d model would embed are refused by name while 1536-d embeddings are stored."""
    _, headers = project_user
    created = await client.post("/api/v1/connectors", json=PINECONE_CONNECTOR, headers=headers)
    assert created.status_code == 201, created.text
    connector = created.json()
    assert (connector["name"], connector["type"]) == ("documents", "pinecone")
    config = connector["config"]
    assert config["api_key"] == "***" and "pk-..." not in created.text
    assert (config["region"], config["cloud"], config["dimension"]) == ("us-west1", "gcp", 1536)

    with FakePinecone(1536, api_key="pk-...") as fake:
        patched = await client.patch(
            f"/api/v1/connectors/{connector['id']}",
            json={"config": {**config, "api_key": "***", "index_host": fake.url}},
            headers=headers,
        )
        assert patched.status_code == 200, patched.text
        embedding = [0.0] * 1536
        embedding[7] = 1.0
        ingested = await client.post(
            "/api/v1/advanced/vectors/ingest",
            json={
                "connector_id": connector["id"],
                "collection": "docs",
                "documents": [
                    {"doc_id": "with-vector", "text": "a chunk", "embedding": embedding},
                    {"doc_id": "text-only", "text": "needs the 256-d local model"},
                ],
            },
            headers=headers,
        )
        assert ingested.status_code == 200, ingested.text
        report = ingested.json()
        assert [r["doc_id"] for r in report["rejected"]] == ["text-only"]
        assert (
            "dimension 256" in report["rejected"][0]["reason"] and "1536" in report["rejected"][0]["reason"]
        )
        found = await client.post(
            "/api/v1/advanced/vectors/search",
            json={"connector_id": connector["id"], "collection": "docs", "vector": embedding, "top_k": 1},
            headers=headers,
        )
        assert found.status_code == 200, found.text
        assert found.json()["hits"][0]["text"] == "a chunk"


async def test_login_example(client: httpx.AsyncClient) -> None:
    """ "Authentication": the login body as written; the token then opens an advanced endpoint."""
    login = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    listed = await client.get(
        "/api/v1/advanced/features/features", headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 200, listed.text
    assert (await client.get("/api/v1/advanced/features/features")).status_code == 401
