"""Workers SIGKILLed at random points while events stream in lose nothing and write nothing twice.

Each worker runs as a real process (`aietl worker <name>`) on the isolated stack, and is killed and
restarted a few times while its topic fills (`tests/reliability/crash.py`, one harness for all).
Once its consumer group has committed every event, each event's effect is present exactly once:
- drift: one processed marker per event, and the whole state of every table equals what the same
  sequence produces applied once without a crash;
- features: one processed marker per event, one offline row per value sent, holding that value;
- predict: one ClickHouse run row per run id, with the values sent (read in a process of its own
  on the worker's chDB data dir, after the worker has exited);
- vector_sink: in Milvus (a `milvus-lite server` the worker and the test share), every document
  holds exactly the chunks of its last version, embedded by the local model; none twice, no orphan.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusClient
from sqlalchemy import func, select

from aietl.services.drift import service as drift_service
from aietl.services.drift.tables import AuditRecord, Detection, SchemaVersion
from aietl.services.features.domain import FeatureType
from aietl.services.features.registry import FeatureDefinition, register_feature
from aietl.services.features.tables import OfflineValue
from aietl.services.vector_sink import store as vector_store
from aietl.services.vector_sink.config import MilvusOptions, split_secrets
from aietl.services.vector_sink.connectors.milvus import MilvusStore
from aietl.services.vector_sink.domain.ids import scoped_collection
from aietl.services.vector_sink.domain.planning import make_chunks
from aietl.services.vector_sink.embeddings import EmbeddingConfig, create_embedder
from aietl.services.vector_sink.tables import DocumentChunks
from aietl.services.vector_sink.worker import to_document
from aietl.shared.db import ProcessedEvent
from aietl.shared.events import (
    DocumentIngested,
    FeaturesWritten,
    FeatureValue,
    ObservedColumn,
    PipelineRunMetrics,
    SchemaObserved,
    Topic,
)
from aietl.shared.settings import Settings
from tests.reliability.conftest import BROKERS, Stack, scale
from tests.reliability.crash import Disruption, chdb_query, kill_and_restart_while_streaming, run_seed

# Counts on PostgreSQL; the SQLite runs take a share of them (`Stack.events`).
EVENTS = scale(10_000)  # the figure; about 25 s of processing for drift here
FEATURE_EVENTS = max(100, EVENTS // 8)  # each carries 1-3 values; about 30 s
PREDICT_EVENTS = EVENTS  # one run row each (1 in 20 re-sends an earlier run); batched like drift
# Each vector_sink event is a document to chunk, embed and upsert in Milvus Lite (pure Python,
# ~4,000 rows per CPU-second), so it gets fewer events to stay within a minute on two loaded cores.
DOCUMENTS = max(40, EVENTS // 50)  # 2.5 events each on average (versions, repeats, deletes)
TABLES = 40
SHAPES = (
    [ObservedColumn(name="id", type="int", nullable=False, primary_key=True)],
    [
        ObservedColumn(name="id", type="int", nullable=False, primary_key=True),
        ObservedColumn(name="note", type="text"),
    ],
    [ObservedColumn(name="id", type="bigint", nullable=False, primary_key=True)],
)


def tagged_uuid(tag: str) -> uuid.UUID:
    """A fresh UUID whose first 8 hex digits are the run's tag, so the run's markers are one LIKE away."""
    return uuid.UUID(tag + uuid.uuid4().hex[8:])


async def processed(stack: Stack, consumer: str, tag: str) -> int:
    async with stack.database.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.consumer == consumer, ProcessedEvent.event_id.like(f"{tag}%"))
        )
    return int(count or 0)


# --- drift ---------------------------------------------------------------------------------------


def make_events(project: str, tag: str, rng: random.Random, count: int = EVENTS) -> list[SchemaObserved]:
    # Mostly repeats of a table's current shape (no new version), now and then a change.
    current = dict.fromkeys(range(TABLES), 0)
    events = []
    for _ in range(count):
        table = rng.randrange(TABLES)
        if rng.random() < 0.2:
            current[table] = rng.randrange(len(SHAPES))
        events.append(
            SchemaObserved(
                event_id=tagged_uuid(tag),
                project_id=project,
                connector_id="crash",
                table_name=f"t{table}",
                columns=SHAPES[current[table]],
            )
        )
    return events


async def drift_state(stack: Stack, project: str) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per table: its baseline versions, detections and audit trail, without ids and times."""
    state: dict[str, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))
    async with stack.database.sessions() as session:
        for row in await session.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project)):
            state[row.table_name]["versions"].append((row.version, row.schema_hash))
        for detection in await session.scalars(select(Detection).where(Detection.project_id == project)):
            state[detection.table_name]["detections"].append(
                (
                    detection.baseline_version,
                    detection.new_version or 0,
                    detection.before_hash,
                    detection.after_hash,
                    detection.status,
                )
            )
        for audit in await session.scalars(select(AuditRecord).where(AuditRecord.project_id == project)):
            state[audit.table_name]["audit"].append(
                (audit.action, audit.strategy or "", audit.before_hash or "", audit.after_hash or "")
            )
        detected = list(
            await session.scalars(select(Detection.observed_event_id).where(Detection.project_id == project))
        )
    assert len(detected) == len(set(detected)), "an observation was detected twice"
    return {table: {kind: sorted(rows) for kind, rows in kinds.items()} for table, kinds in state.items()}


@pytest.mark.parametrize("stack_broker", BROKERS, indirect=True)
async def test_drift_worker_survives_sigkill(stack: Stack) -> None:
    """The drift service's own policy decides what an observation does; the oracle is the same
    sequence applied once, in order, without a crash (through `aietl.services.drift.service.observe_many`)."""
    await drift_exactly_once(stack)


@pytest.mark.parametrize("stack_broker", BROKERS, indirect=True)
async def test_drift_replicas_share_partitions_and_survive_sigkill(stack: Stack) -> None:
    """Three replicas of the drift worker in one consumer group, one per partition; each kill
    rebalances the partitions of the dead one to the others (and back to its replacement)."""
    await drift_exactly_once(stack, replicas=3)


async def drift_exactly_once(
    stack: Stack, *, replicas: int = 1, disruptions: Sequence[Disruption] | None = None, events: int = EVENTS
) -> None:
    """Stream drift observations through the worker while the run is disrupted (worker kills by
    default); then every observation has been handled once and the state is the reference's."""
    rng = random.Random(run_seed())
    project, tag = f"crash-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    observed = make_events(project, tag, rng, stack.events(events))
    await kill_and_restart_while_streaming(
        stack, "drift", Topic.SCHEMA_OBSERVED, observed, rng, replicas=replicas, disruptions=disruptions
    )
    assert await processed(stack, "drift", tag) == len(observed)

    reference = f"ref-{uuid.uuid4().hex[:8]}"
    async with stack.database.transaction() as session:
        await drift_service.observe_many(
            session,
            [e.model_copy(update={"project_id": reference, "event_id": uuid.uuid4()}) for e in observed],
            "test:reference",
        )
    crashed, expected = await drift_state(stack, project), await drift_state(stack, reference)
    for table, kinds in crashed.items():
        versions = [version for version, _hash in kinds["versions"]]
        assert versions == list(range(1, len(versions) + 1)), f"gap or duplicate in {table}: {versions}"
    assert crashed == expected


# --- features ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack_broker", BROKERS, indirect=True)
async def test_features_worker_survives_sigkill(stack: Stack) -> None:
    """Every value of every event is in the offline store once, with the value sent."""
    rng = random.Random(run_seed())
    project, tag = f"crash-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    async with stack.database.transaction() as session:
        definition = FeatureDefinition(
            name="crash_score",
            feature_type=FeatureType.FLOAT64,
            entity="user",
            ttl_seconds=86_400,
            storage_type="offline",
        )
        version, _ = await register_feature(session, project, definition)
    feature = f"crash_score@v{version.version}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[FeaturesWritten] = []
    expected: dict[tuple[str, int], float] = {}
    for number in range(stack.events(FEATURE_EVENTS)):
        values = []
        for _ in range(rng.randint(1, 3)):
            entity, moment = f"user_{rng.randrange(50)}", start + timedelta(seconds=len(expected))
            expected[(entity, int(moment.timestamp() * 1_000_000))] = float(number)
            values.append(
                FeatureValue(
                    feature_name="crash_score", entity_id=entity, value=float(number), timestamp=moment
                )
            )
        events.append(
            FeaturesWritten(event_id=tagged_uuid(tag), project_id=project, values=values, storage="offline")
        )

    await kill_and_restart_while_streaming(stack, "features", Topic.FEATURES_WRITTEN, events, rng)
    assert await processed(stack, "features", tag) == len(events)

    async with stack.database.sessions() as session:
        rows = (
            await session.execute(
                select(
                    OfflineValue.feature, OfflineValue.entity_id, OfflineValue.event_us, OfflineValue.value
                ).where(OfflineValue.project_id == project)
            )
        ).all()
    assert len(rows) == len(expected)
    assert {row.feature for row in rows} == {feature}
    assert {(row.entity_id, row.event_us): json.loads(row.value) for row in rows} == expected


# --- predict -------------------------------------------------------------------------------------


async def test_predict_worker_survives_sigkill(stack: Stack) -> None:
    """Every run is one row of `predict.runs` in the worker's own chDB, with the values last sent.

    One event in twenty sends an earlier run again (same run id and values, a new event id, as a
    producer that retries would): still one row. The runs span two days, less than the minimum
    history, so each event also goes through the alert evaluation (a history read) without
    training a model."""
    rng = random.Random(run_seed())
    project = f"crash-{uuid.uuid4().hex[:8]}"
    data_dir = stack.settings.data_dir / f"predict-{project}"
    now = datetime.now(UTC).replace(microsecond=0)
    events: list[PipelineRunMetrics] = []
    expected: dict[str, list[Any]] = {}
    for number in range(stack.events(PREDICT_EVENTS)):
        if events and rng.random() < 0.05:
            again = rng.choice(events).model_copy(update={"event_id": uuid.uuid4()})
            events.append(again)
            expected[again.run_id] = [*expected[again.run_id][:-1], str(again.event_id)]
            continue
        started = now - timedelta(hours=48) + timedelta(seconds=number * 15)
        status = "failed" if rng.random() < 0.1 else "success"
        event = PipelineRunMetrics(
            project_id=project,
            pipeline_id=f"p{rng.randrange(50)}",
            run_id=f"run-{number:06d}",
            status=status,
            started_at=started,
            ended_at=started + timedelta(seconds=number % 600),
            duration_seconds=float(number % 600),
            rows_read=number,
            cpu_percent=round(rng.uniform(5, 95), 2),
        )
        events.append(event)
        expected[event.run_id] = [event.pipeline_id, status, float(number % 600), number, str(event.event_id)]

    await kill_and_restart_while_streaming(
        stack,
        "predict",
        Topic.METRICS_INGESTED,
        events,
        rng,
        env={"AIETL_DATA_DIR": str(data_dir), "MIN_HISTORICAL_DAYS": "7"},
    )

    # Only now that the worker has exited may another process open its chDB data dir.
    ours = f"FROM predict.runs WHERE project_id = '{project}'"
    stored, final, _, duplicates, merged = chdb_query(
        Settings(data_dir=data_dir).resolved_clickhouse_dsn,
        f"SELECT count() {ours}",
        "SELECT run_id, pipeline_id, status, duration_seconds, rows_read, event_id "
        f"FROM predict.runs FINAL WHERE project_id = '{project}'",
        "OPTIMIZE TABLE predict.runs FINAL",
        f"SELECT run_id, count() {ours} GROUP BY run_id HAVING count() > 1",
        f"SELECT count() {ours}",
    )
    print(f"predict: {len(events)} events, {len(expected)} runs, {stored[0][0]} rows before OPTIMIZE")
    # What the service reads (FINAL): exactly one row per run id, all of them, with the values sent.
    assert len(final) == len(expected)
    assert {row[0]: row[1:] for row in final} == expected
    # And physically, once merged: a run stored twice (redelivered or re-sent) collapsed into one row.
    assert duplicates == []
    assert merged[0][0] == len(expected)


# --- vector_sink ---------------------------------------------------------------------------------

WORDS = (
    *("pipeline", "schema", "drift", "feature", "vector", "embedding", "kafka", "broker", "partition"),
    *("offset", "replica", "milvus", "chunk", "document", "ingest", "retry", "crash", "restart"),
    *("commit", "marker", "idempotent", "store", "cluster"),
)


def document_text(rng: random.Random) -> str:
    return "\n\n".join(
        f"## Part {part}\n\n" + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
        for part in range(rng.randint(2, 4))
    )


def document_events(
    project: str, connector: str, collection: str, rng: random.Random, documents: int
) -> tuple[list[DocumentIngested], dict[str, DocumentIngested | None]]:
    """Each document's first version, then (interleaved across documents, in order per document)
    new versions, repeats of the current version and deletions; and each document's last event that
    leaves content (None when its last event deletes it)."""
    steps: list[tuple[str, str]] = [(f"doc-{n:05d}", "upsert") for n in range(documents)]
    for _ in range(documents * 3 // 2):
        steps.insert(
            rng.randrange(len(steps) // 3, len(steps) + 1),
            (f"doc-{rng.randrange(documents):05d}", rng.choice(("upsert", "upsert", "repeat", "delete"))),
        )
    events: list[DocumentIngested] = []
    last: dict[str, DocumentIngested | None] = {}
    for doc_id, step in steps:
        previous = last.get(doc_id)
        if step == "delete" or (step == "repeat" and previous is None):
            event = DocumentIngested(
                project_id=project,
                connector_id=connector,
                collection=collection,
                doc_id=doc_id,
                operation="delete",
            )
            last[doc_id] = None
        else:
            version = previous if step == "repeat" and previous is not None else None
            event = DocumentIngested(
                project_id=project,
                connector_id=connector,
                collection=collection,
                doc_id=doc_id,
                text=version.text if version else document_text(rng),
                metadata=version.metadata if version else {"revision": len(events)},
                source="crash-test",
            )
            last[doc_id] = event
        events.append(event)
    return events, last


async def test_vector_sink_worker_survives_sigkill(stack: Stack, milvus_server: str) -> None:
    """Every document holds exactly the chunks of its last version (the service's own chunk ids),
    each once, with the text and the local model's embedding of it; deleted documents hold none,
    and nothing else is in the collection."""
    rng = random.Random(run_seed())
    project, collection = f"crash-{uuid.uuid4().hex[:8]}", "docs"
    options = MilvusOptions(chunk_size=300, chunk_overlap=40)  # the store comes from MILVUS_HOST/PORT
    plain, _ = split_secrets(options)
    async with stack.database.transaction() as session:
        row = await vector_store.add_connector(session, project, "crash", "milvus", plain, [], None)
    connector = row.id
    events, last = document_events(project, connector, collection, rng, stack.events(DOCUMENTS))
    host, port = milvus_server.removeprefix("http://").split(":")

    await kill_and_restart_while_streaming(
        stack,
        "vector_sink",
        Topic.DOCUMENTS_INGESTED,
        events,
        rng,
        env={"MILVUS_HOST": host, "MILVUS_PORT": port},
    )

    policy = options.chunking()
    expected = {
        doc_id: {chunk.id: chunk.text for chunk in make_chunks(to_document(event), policy)}
        for doc_id, event in last.items()
        if event is not None
    }
    everything = {chunk: text for chunks in expected.values() for chunk, text in chunks.items()}
    owner = {chunk: doc_id for doc_id, chunks in expected.items() for chunk in chunks}
    assert len(everything) < 16_384, "one query reads the whole collection: page it at this scale"
    name = scoped_collection(project, collection)
    milvus = MilvusStore(milvus_server)
    client = MilvusClient(uri=milvus_server)
    try:
        # Per document, what the service's own lookup finds: exactly the last version's chunks.
        for doc_id in last:
            assert milvus.document_ids(name, doc_id) == set(expected.get(doc_id, {})), doc_id
        # The whole collection: each chunk once, with its text; no orphan of an older version.
        rows = client.query(name, filter='id != ""', output_fields=["id", "doc_id", "text"], limit=16_384)
        counted = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
        sample = rng.sample(sorted(everything), min(64, len(everything)))
        vectors = {r["id"]: r["embedding"] for r in client.get(name, ids=sample, output_fields=["embedding"])}
    finally:
        client.close()
        milvus.close()
    ids = Counter(str(r["id"]) for r in rows)
    assert [chunk for chunk, times in ids.items() if times > 1] == []
    assert {str(r["id"]): r["text"] for r in rows} == everything
    assert {str(r["id"]): r["doc_id"] for r in rows} == owner
    assert counted == len(everything) == len(rows)
    # Embedded by the default local model: the stored vector is that model's vector of the chunk text.
    embedder = create_embedder(EmbeddingConfig())
    wanted = embedder.embed([everything[chunk] for chunk in sample])
    stored = np.asarray([vectors[chunk] for chunk in sample], dtype=np.float32)
    np.testing.assert_allclose(stored, wanted, atol=1e-5)
    # The service's record agrees with the store: nothing pending, deleted documents forgotten.
    async with stack.database.sessions() as session:
        records = {
            r.doc_id: (sorted(r.chunk_ids), r.pending_ids)
            for r in await session.scalars(
                select(DocumentChunks).where(
                    DocumentChunks.project_id == project, DocumentChunks.connector_id == connector
                )
            )
        }
    assert records == {doc_id: (sorted(chunks), []) for doc_id, chunks in expected.items()}
    print(
        f"vector_sink: {len(last)} documents, {len(expected)} live, {len(everything)} chunks, "
        f"{len(events)} events"
    )
