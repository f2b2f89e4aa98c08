"""Workers SIGKILLed at random points while events stream in lose nothing and write nothing twice.

Each worker runs as a real process (`aietl worker <name>`) on the isolated stack, and is killed and
restarted a few times while its topic fills. Afterwards every event has exactly one processed
marker and its effect is present exactly once: for drift, the whole state of every table equals
what the same sequence produces applied once without a crash; for features, one offline row per
value sent, holding that value.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from services.drift import service as drift_service
from services.drift.tables import AuditRecord, Detection, SchemaVersion
from services.features.domain import FeatureType
from services.features.registry import FeatureDefinition, register_feature
from services.features.tables import OfflineValue
from shared.db import ProcessedEvent
from shared.events import Event, FeaturesWritten, FeatureValue, ObservedColumn, SchemaObserved, Topic
from tests.reliability.conftest import Service, Stack, scale

log = structlog.get_logger(__name__)

EVENTS = scale(10_000)  # the figure; about 25 s for drift here
FEATURE_EVENTS = max(100, EVENTS // 8)  # each carries 1-3 values; about 30 s
KILLS = int(os.environ.get("AIETL_RELIABILITY_KILLS", "3"))
STREAM_SECONDS = 20.0  # long enough for three restarts (each about 4 s to start and join the group)
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


def make_events(project: str, tag: str, rng: random.Random) -> list[SchemaObserved]:
    # Mostly repeats of a table's current shape (no new version), now and then a change.
    current = dict.fromkeys(range(TABLES), 0)
    events = []
    for _ in range(EVENTS):
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


async def stream(servers: str, topic: str, events: list[Event], seconds: float, published: list[int]) -> None:
    """Publish the events spread over about `seconds`, keyed, acks=all, in order per table;
    `published[0]` counts what the broker acknowledged so far."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        chunk = max(1, len(events) // 40)
        for start in range(0, len(events), chunk):
            sends = [
                await producer.send(topic, e.model_dump_json().encode(), key=e.kafka_key())
                for e in events[start : start + chunk]
            ]
            await asyncio.gather(*sends)
            published[0] += len(sends)
            await asyncio.sleep(seconds / 40)
    finally:
        await producer.stop()


async def processed(stack: Stack, consumer: str, tag: str) -> int:
    async with stack.database.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.consumer == consumer, ProcessedEvent.event_id.like(f"{tag}%"))
        )
    return int(count or 0)


async def wait_for_progress(stack: Stack, consumer: str, tag: str, beyond: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await processed(stack, consumer, tag) <= beyond:
        if time.monotonic() > deadline:
            raise AssertionError(f"no progress beyond {beyond} processed events within {timeout}s")
        await asyncio.sleep(0.05)


async def kill_and_restart_while_streaming(
    stack: Stack, worker: str, consumer: str, topic: str, events: list[Event], tag: str, rng: random.Random
) -> list[int]:
    """Run `aietl worker <worker>`, stream `events`, SIGKILL it at random points and restart it;
    return once every event has its marker. Returns the marker counts seen at each kill."""
    servers = stack.settings.resolved_kafka_servers

    def start() -> Service:
        return stack.spawn(f"{worker}-worker", "worker", worker, port_env="AIETL_METRICS_PORT")

    process = start()
    published = [0]
    publishing = asyncio.create_task(stream(servers, topic, events, STREAM_SECONDS, published))
    # Kill points spread over the stream: once a random number of events is published and the
    # worker has made progress since its last start, plus a random delay.
    targets = sorted(rng.randrange(len(events) // 20, len(events) * 4 // 5) for _ in range(KILLS))
    kills: list[int] = []
    try:
        for target in targets:
            while published[0] < target:
                await asyncio.sleep(0.02)
            await wait_for_progress(stack, consumer, tag, beyond=kills[-1] if kills else 0, timeout=90)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            process.kill()
            kills.append(await processed(stack, consumer, tag))
            log.info("worker killed", worker=worker, processed_at_kill=kills[-1], of=len(events))
            process = start()
        await publishing
        deadline = time.monotonic() + 180
        while (done := await processed(stack, consumer, tag)) < len(events):
            assert time.monotonic() < deadline, f"{done}/{len(events)} processed\n{process.output()}"
            assert process.process.poll() is None, process.output()
            await asyncio.sleep(0.2)
        process.stop()  # graceful or not, the at-least-once guarantees hold
    finally:
        publishing.cancel()
        process.kill()
    assert len(kills) == KILLS and kills[-1] < len(events), f"the kills did not land mid-stream: {kills}"
    assert await processed(stack, consumer, tag) == len(events)
    return kills


def run_seed() -> int:
    seed = int(os.environ.get("AIETL_RELIABILITY_SEED", random.randrange(1_000_000)))
    print(f"\ncrash test seed: {seed} (AIETL_RELIABILITY_SEED replays it)")
    return seed


async def drift_state(stack: Stack, project: str) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per table: its baseline versions, detections and audit trail, without ids and times."""
    state: dict[str, dict[str, list[tuple[Any, ...]]]] = defaultdict(lambda: defaultdict(list))
    async with stack.database.sessions() as session:
        for row in await session.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project)):
            state[row.table_name]["versions"].append((row.version, row.schema_hash))
        for row in await session.scalars(select(Detection).where(Detection.project_id == project)):
            state[row.table_name]["detections"].append(
                (row.baseline_version, row.new_version or 0, row.before_hash, row.after_hash, row.status)
            )
        for row in await session.scalars(select(AuditRecord).where(AuditRecord.project_id == project)):
            state[row.table_name]["audit"].append(
                (row.action, row.strategy or "", row.before_hash or "", row.after_hash or "")
            )
        detected = list(
            await session.scalars(select(Detection.observed_event_id).where(Detection.project_id == project))
        )
    assert len(detected) == len(set(detected)), "an observation was detected twice"
    return {table: {kind: sorted(rows) for kind, rows in kinds.items()} for table, kinds in state.items()}


async def test_drift_worker_survives_sigkill(stack: Stack) -> None:
    """The drift service's own policy decides what an observation does; the oracle is the same
    sequence applied once, in order, without a crash (through `services.drift.service.observe_many`)."""
    rng = random.Random(run_seed())
    project, tag = f"crash-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    events = make_events(project, tag, rng)
    await kill_and_restart_while_streaming(stack, "drift", "drift", Topic.SCHEMA_OBSERVED, events, tag, rng)

    reference = f"ref-{uuid.uuid4().hex[:8]}"
    async with stack.database.transaction() as session:
        await drift_service.observe_many(
            session,
            [e.model_copy(update={"project_id": reference, "event_id": uuid.uuid4()}) for e in events],
            "test:reference",
        )
    crashed, expected = await drift_state(stack, project), await drift_state(stack, reference)
    for table, kinds in crashed.items():
        versions = [version for version, _hash in kinds["versions"]]
        assert versions == list(range(1, len(versions) + 1)), f"gap or duplicate in {table}: {versions}"
    assert crashed == expected


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
    events, expected = [], {}
    for number in range(FEATURE_EVENTS):
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

    await kill_and_restart_while_streaming(
        stack, "features", "features", Topic.FEATURES_WRITTEN, events, tag, rng
    )

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
