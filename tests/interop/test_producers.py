"""Events from producers nobody here wrote reach every worker: librdkafka (confluent-kafka), kafka-python
and Apache Kafka's Java client, each with gzip, snappy, lz4 and zstd, keys as docs/events.md gives them
and headers. The batches on the broker carry the codec asked for, each key lands on the partition the
platform's own producer picks, and every event's effect is read back over REST.

Runs on the session's broker: tansu in `make test`'s first pass, Apache Kafka in its second.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from aietl.services.runtime import Runtime
from aietl.shared.bus import idempotence_supported
from aietl.shared.events import (
    DocumentIngested,
    Event,
    FeaturesWritten,
    FeatureValue,
    ObservedColumn,
    PipelineRunMetrics,
    SchemaObserved,
)
from tests.interop.producers import (
    CODECS,
    Codec,
    ConfluentKafka,
    JavaProducer,
    KafkaPython,
    Message,
    Written,
    codecs_of,
)
from tests.support import eventually

API = "/api/v1"
FEATURE = "interop_score"
ENTITIES = 20  # values per features.written event: enough text that every client compresses it
COLLECTION = "interop"


class Sender(Protocol):
    name: str

    def send(self, servers: str, messages: Sequence[Message], codec: Codec) -> list[Written]: ...


@pytest.fixture(scope="session")
async def foreign_producers(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> list[Sender]:
    # The Java client and kafka-python ask for a producer id unless told not to; tansu grants none.
    idempotent = await idempotence_supported(runtime.settings)
    java = await asyncio.to_thread(
        JavaProducer.compile, tmp_path_factory.mktemp("java-producer"), idempotent=idempotent
    )
    return [ConfluentKafka(), KafkaPython(idempotent=idempotent), java]


@dataclass(frozen=True)
class Case:
    """What one producer sends with one codec: an event for every topic a worker consumes."""

    tag: str
    project: str
    connector: str

    @property
    def table(self) -> str:
        return f"t_{self.tag}"

    @property
    def pipeline(self) -> str:
        return f"p_{self.tag}"

    @property
    def entities(self) -> list[str]:
        return [f"{self.tag}-{n}" for n in range(ENTITIES)]

    def value_of(self, entity: str) -> int:
        return sum(map(ord, entity))

    def events(self) -> list[tuple[bytes, Event]]:
        """(key as docs/events.md says, event) for each consumed topic."""
        now = datetime.now(UTC)
        columns = [ObservedColumn(name="id", type="bigint", nullable=False, primary_key=True)] + [
            ObservedColumn(name=f"attribute_{n}", type="varchar(200)") for n in range(30)
        ]
        runs = [
            PipelineRunMetrics(
                project_id=self.project,
                pipeline_id=self.pipeline,
                run_id=f"run-{n}",
                status="success",
                started_at=now - timedelta(days=days),
                ended_at=now - timedelta(days=days) + timedelta(minutes=5),
                duration_seconds=300,
                rows_read=1_000,
                rows_written=1_000,
                error_message="no error; " * 100,
            )
            for n, days in enumerate((2.0, 0.5))
        ]
        return [
            (
                f"interop/{self.table}".encode(),
                SchemaObserved(
                    project_id=self.project,
                    connector_id="interop",
                    table_name=self.table,
                    dialect="postgres",
                    columns=columns,
                ),
            ),
            (
                self.entities[0].encode(),
                FeaturesWritten(
                    project_id=self.project,
                    values=[
                        FeatureValue(
                            feature_name=FEATURE,
                            entity_id=entity,
                            value=self.value_of(entity),
                            timestamp=now - timedelta(seconds=5),
                        )
                        for entity in self.entities
                    ],
                ),
            ),
            *((self.pipeline.encode(), run) for run in runs),
            (
                f"{COLLECTION}/{self.tag}".encode(),
                DocumentIngested(
                    project_id=self.project,
                    connector_id=self.connector,
                    collection=COLLECTION,
                    doc_id=self.tag,
                    text=f"Interoperability note {self.tag}. " + "Every producer's events are read. " * 40,
                ),
            ),
        ]

    def messages(self) -> list[Message]:
        return [
            Message(
                event.topic,
                key,
                event.model_dump_json().encode(),
                (
                    ("content-type", b"application/json"),
                    ("aietl-schema-version", str(event.schema_version).encode()),
                    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                    ("producer", self.tag.encode()),
                ),
            )
            for key, event in self.events()
        ]


@pytest.mark.timeout(600)
async def test_every_foreign_producer_and_codec_reaches_every_worker(
    client: httpx.AsyncClient,
    runtime: Runtime,
    project_user: tuple[str, dict[str, str]],
    foreign_producers: list[Sender],
) -> None:
    project, headers = project_user
    servers = runtime.settings.resolved_kafka_servers
    registered = await client.post(
        f"{API}/advanced/features/register",
        params={"project_id": project},
        json={"name": FEATURE, "feature_type": "int64", "entity": "entity", "ttl_seconds": 3600},
        headers=headers,
    )
    assert registered.status_code == 201, registered.text
    created = await client.post(
        f"{API}/connectors",
        params={"project_id": project},
        json={"name": f"interop-{uuid.uuid4().hex[:6]}", "type": "milvus", "config": {}},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    connector = created.json()["id"]

    cases: list[Case] = []
    for producer in foreign_producers:
        for codec in CODECS:
            case = Case(f"{producer.name.replace('-', '_')}_{codec}", project, connector)
            messages = case.messages()
            written = await asyncio.to_thread(producer.send, servers, messages, codec)
            assert len(written) == len(messages), (producer.name, codec, written)
            stored = await codecs_of(servers, written)
            assert set(stored.values()) == {codec}, (producer.name, stored)
            assert_murmur2_partitions(messages, written, runtime.settings.kafka_partitions)
            cases.append(case)

    for case in cases:
        await eventually(partial(schema_versions, client, headers, case), timeout=120)
        await eventually(partial(online_values, client, headers, case), timeout=120)
        history = await eventually(partial(run_history, client, headers, case), timeout=120)
        assert history == pytest.approx(1.5, abs=0.01), case.tag  # both runs stored, two days apart
    documents = await eventually(
        lambda: documents_found(client, headers, project, connector, len(cases)), timeout=180
    )
    assert documents == {case.tag for case in cases}


def assert_murmur2_partitions(
    messages: Sequence[Message], written: Sequence[Written], partitions: int
) -> None:
    """Keys land where the platform's producer (aiokafka, murmur2 as the Java client) puts them, so
    the events of one entity stay in order whoever sends them."""
    partitioner = DefaultPartitioner()
    everything = list(range(partitions))
    expected = sorted((m.topic, partitioner(m.key, everything, everything)) for m in messages)
    assert sorted((w.topic, w.partition) for w in written) == expected


async def schema_versions(client: httpx.AsyncClient, headers: dict[str, str], case: Case) -> Any:
    response = await client.get(
        f"{API}/advanced/schema-drift/history",
        params={"project_id": case.project, "connector_id": "interop", "table_name": case.table},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    versions = response.json()["versions"]
    return versions if [v["version"] for v in versions] == [1] else None


async def online_values(client: httpx.AsyncClient, headers: dict[str, str], case: Case) -> bool:
    response = await client.post(
        f"{API}/advanced/features/get-online",
        params={"project_id": case.project},
        json={"feature_names": [FEATURE], "entity_ids": case.entities},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    found = {v["entity_id"]: v["features"][FEATURE] for v in response.json()["feature_vectors"]}
    return found == {entity: case.value_of(entity) for entity in case.entities}


async def run_history(client: httpx.AsyncClient, headers: dict[str, str], case: Case) -> float | None:
    """Days between the pipeline's stored runs: the predict service says how much history it has."""
    response = await client.get(
        f"{API}/advanced/predict/failure/{case.pipeline}",
        params={"project_id": case.project},
        headers=headers,
    )
    if response.status_code == 404:  # no run stored yet
        return None
    assert response.status_code == 409, response.text
    have = float(response.json()["context"]["have"])
    return have if have > 0 else None


async def documents_found(
    client: httpx.AsyncClient, headers: dict[str, str], project: str, connector: str, expected: int
) -> set[str] | None:
    response = await client.post(
        f"{API}/advanced/vectors/search",
        params={"project_id": project},
        json={
            "connector_id": connector,
            "collection": COLLECTION,
            "query": "interoperability note",
            "top_k": 100,
        },
        headers=headers,
    )
    if response.status_code == 404:  # the collection appears with the first document
        return None
    assert response.status_code == 200, response.text
    found = {hit["metadata"]["doc_id"] for hit in response.json()["hits"]}
    return found if len(found) >= expected else None
