"""REST: connector CRUD with secrets never returned, ingest and search, errors that name the field."""

from __future__ import annotations

import uuid

import httpx

from aietl.services.runtime import Runtime
from aietl.services.vector_sink import store
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.model import CollectionSpec
from aietl.services.vector_sink.service import service_of

API = "/api/v1"


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **config: object) -> dict:
    response = await client.post(
        f"{API}/connectors",
        json={"name": f"milvus-{uuid.uuid4().hex[:8]}", "type": "milvus", "config": config},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_connector_crud_never_returns_secrets(
    client: httpx.AsyncClient, runtime: Runtime, project_user: tuple[str, dict[str, str]]
) -> None:
    project, headers = project_user
    secret = f"s3cret-{uuid.uuid4().hex}"
    created = await _create(client, headers, token=secret, embedding_api_key=secret, chunk_size=500)
    assert created["config"]["token"] == "***" and created["config"]["chunk_size"] == 500
    assert secret not in str(created)
    async with runtime.database.sessions() as session:
        row = await store.get_connector(session, project, created["id"])
    assert row is not None and secret not in str(row.options) and secret not in (row.sealed_secrets or "")

    listed = await client.get(f"{API}/connectors", headers=headers)
    assert [c["id"] for c in listed.json()] == [created["id"]] and secret not in listed.text
    fetched = await client.get(f"{API}/connectors/{created['name']}", headers=headers)  # by name too
    assert fetched.json()["id"] == created["id"]

    patched = await client.patch(
        f"{API}/connectors/{created['id']}",
        json={"config": {"token": "***", "chunk_size": 800}},
        headers=headers,
    )
    assert patched.status_code == 200 and patched.json()["config"]["chunk_size"] == 800
    service_box = service_of(runtime).secret_box
    async with runtime.database.sessions() as session:
        row = await store.get_connector(session, project, created["id"])
    assert row is not None
    assert service_box.open(row.sealed_secrets)["token"] == secret  # `***` kept the secret

    checked = await client.post(f"{API}/connectors/{created['id']}/test", headers=headers)
    assert checked.json()["ok"] is True, checked.text

    deleted = await client.delete(f"{API}/connectors/{created['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{API}/connectors/{created['id']}", headers=headers)).status_code == 404


async def test_connector_validation_and_isolation(
    client: httpx.AsyncClient, auth: dict[str, str], project_user: tuple[str, dict[str, str]]
) -> None:
    _, headers = project_user
    bad = await client.post(
        f"{API}/connectors",
        json={"name": "x", "type": "milvus", "config": {"chunk_size": 1}},
        headers=headers,
    )
    assert bad.status_code == 422 and "chunk_size" in bad.text
    unknown = await client.post(
        f"{API}/connectors", json={"name": "x", "type": "milvus", "config": {"colour": 1}}, headers=headers
    )
    assert unknown.status_code == 422 and "colour" in unknown.text
    wrong_type = await client.post(f"{API}/connectors", json={"name": "x", "type": "redis"}, headers=headers)
    assert wrong_type.status_code == 422 and "type" in wrong_type.text

    created = await _create(client, headers)
    duplicate = await client.post(
        f"{API}/connectors", json={"name": created["name"], "type": "milvus"}, headers=headers
    )
    assert duplicate.status_code == 409
    other = await client.get(f"{API}/connectors/{created['id']}", headers=auth)  # admin, default project
    assert other.status_code == 404
    outsider = await client.get(f"{API}/connectors", params={"project_id": "default"}, headers=headers)
    assert outsider.status_code == 404


async def test_ingest_and_search(client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]]) -> None:
    _, headers = project_user
    connector = await _create(client, headers, metadata_schema={"year": "int"})
    body = {
        "connector_id": connector["id"],
        "collection": "handbook",
        "documents": [
            {
                "doc_id": "pw",
                "text": "# Passwords\n\nReset a forgotten password from the login page.",
                "metadata": {"year": 2024},
                "author": "ann",
            },
            {
                "doc_id": "bread",
                "text": "Sourdough bread needs a starter and time.",
                "metadata": {"year": 2020},
            },
            {
                "doc_id": "k8s",
                "text": "Pods restart when the container exceeds its memory limit.",
                "metadata": {"year": 2023},
            },
            {"doc_id": "nothing"},
        ],
    }
    ingested = await client.post(f"{API}/advanced/vectors/ingest", json=body, headers=headers)
    assert ingested.status_code == 200, ingested.text
    report = ingested.json()
    assert report["changed_documents"] == 3 and report["rejected"] == [
        {"doc_id": "nothing", "reason": "neither `text` nor `embedding` given"}
    ]
    again = await client.post(f"{API}/advanced/vectors/ingest", json=body, headers=headers)
    assert again.json()["unchanged_documents"] == 3 and again.json()["written_chunks"] == 0

    search = {"connector_id": connector["name"], "collection": "handbook", "top_k": 2}
    hits = (
        await client.post(
            f"{API}/advanced/vectors/search", json={**search, "query": "forgot my password"}, headers=headers
        )
    ).json()["hits"]
    assert hits[0]["metadata"]["doc_id"] == "pw" and hits[0]["metadata"]["author"] == "ann"
    assert hits[0]["score"] > hits[1]["score"] and "Reset" in hits[0]["text"]

    filtered = await client.post(
        f"{API}/advanced/vectors/search",
        json={**search, "query": "password", "filter": {"year": {"$lt": 2024}}, "hybrid": True},
        headers=headers,
    )
    assert filtered.status_code == 200 and {h["metadata"]["doc_id"] for h in filtered.json()["hits"]} == {
        "bread",
        "k8s",
    }
    by_vector = await client.post(
        f"{API}/advanced/vectors/search", json={**search, "vector": [0.0625] * 256}, headers=headers
    )
    assert by_vector.status_code == 200 and len(by_vector.json()["hits"]) == 2

    for payload, status, field in [
        ({**search, "query": "x", "filter": {"year": {"$regex": 1}}}, 422, "filter"),
        ({**search, "vector": [1.0, 2.0]}, 422, "vector"),
        ({**search, "query": "x", "vector": [1.0]}, 422, "exactly one"),
        ({**search, "query": "x", "collection": "missing"}, 404, "collection"),
        ({**search, "query": "x", "connector_id": "missing"}, 404, "connector_id"),
        ({**search, "query": "x", "top_k": 0}, 422, "top_k"),
    ]:
        response = await client.post(f"{API}/advanced/vectors/search", json=payload, headers=headers)
        assert response.status_code == status and field in response.text, (payload, response.text)

    removed = await client.post(
        f"{API}/advanced/vectors/ingest",
        json={
            "connector_id": connector["id"],
            "collection": "handbook",
            "documents": [{"doc_id": "pw", "operation": "delete"}],
        },
        headers=headers,
    )
    assert removed.json()["deleted_documents"] == 1
    hits = (
        await client.post(
            f"{API}/advanced/vectors/search",
            json={**search, "query": "password", "top_k": 5},
            headers=headers,
        )
    ).json()["hits"]
    assert "pw" not in {h["metadata"]["doc_id"] for h in hits}


async def test_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    ready = await client.get("/ready")
    assert ready.json()["components"]["vector_sink_model"] == "ok"
    exposed = (await client.get("/metrics")).text
    assert 'aietl_vector_chunks_written_total{store="milvus"}' in exposed
    assert 'aietl_vector_query_seconds_count{store="milvus"}' in exposed


async def test_collection_of_another_dimension_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, project_user: tuple[str, dict[str, str]]
) -> None:
    project, headers = project_user
    connector = await _create(client, headers)
    opened = await service_of(runtime).connector(project, connector["id"])
    opened.store.ensure_collection(CollectionSpec(scoped_collection(project, "legacy"), 8))
    response = await client.post(
        f"{API}/advanced/vectors/ingest",
        json={
            "connector_id": connector["id"],
            "collection": "legacy",
            "documents": [{"doc_id": "a", "text": "x"}],
        },
        headers=headers,
    )
    assert response.status_code == 422 and "has dimension 8" in response.text


async def test_cache_hits_per_collection_in_the_ops_status(
    client: httpx.AsyncClient, project_user: tuple[str, dict[str, str]]
) -> None:
    """The embedding cache is shared across collections; each document's record keeps how many of
    its chunks at its last ingest took their vector from it, and the ops status sums them."""
    project, headers = project_user
    connector = await _create(client, headers, chunk_size=40, chunk_overlap=0)
    tag = uuid.uuid4().hex[:8]  # texts no other test has embedded
    alpha, bravo = f"Alpha {tag} tells the first part.", f"Bravo {tag} tells the second part."
    charlie, delta = f"Charlie {tag} tells the third part.", f"Delta {tag} is a new second part."

    async def ingest(collection: str, *documents: dict) -> dict:
        body = {"connector_id": connector["id"], "collection": collection, "documents": list(documents)}
        answer = await client.post(f"{API}/advanced/vectors/ingest", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def status() -> dict[str, tuple]:
        answer = await client.get(
            f"{API}/ops/vectors/collections", params={"project_id": project}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["embedding_cache"] is None  # a member does not see the shared cache
        return {
            c["collection"]: (
                c["documents"],
                c["chunks"],
                c["cache_hits"],
                c["cache_lookups"],
                c["cache_hit_rate"],
            )
            for c in answer.json()["collections"]
        }

    story = "\n\n".join([alpha, bravo, charlie])
    await ingest("first", {"doc_id": "story", "text": story})
    second = await ingest(
        "second",
        {"doc_id": "copy", "text": story},
        {"doc_id": "own", "text": "caption", "embedding": [0.0625] * 256},  # brings its vector
    )
    assert (second["embedded_texts"], second["cache_hits"]) == (0, 3)
    # the story edited: alpha stays (kept, not looked up), delta is new, bravo moved (a new chunk, cached)
    edited = await ingest("first", {"doc_id": "story", "text": "\n\n".join([alpha, delta, bravo])})
    assert (edited["written_chunks"], edited["embedded_texts"], edited["cache_hits"]) == (2, 1, 1)
    assert await status() == {"first": (1, 3, 1, 2, 0.5), "second": (2, 4, 3, 3, 1.0)}

    unchanged = await ingest("second", {"doc_id": "copy", "text": story})
    assert unchanged["unchanged_documents"] == 1
    assert (await status())["second"] == (2, 4, 3, 3, 1.0)  # the last ingest that wrote something counts
    await ingest("second", {"doc_id": "copy", "operation": "delete"})
    assert (await status())["second"] == (1, 1, 0, 0, None)
