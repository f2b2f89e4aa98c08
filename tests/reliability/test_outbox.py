"""The transactional outbox on SQLite and PostgreSQL: nothing published for a rolled-back transaction,
every committed event published exactly once after a SIGKILL between commit and publish, and after
the broker was away for a while; one relay at a time, in commit order."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from sqlalchemy import select

from aietl.shared.bus import ensure_topics
from aietl.shared.db import Database
from aietl.shared.embedded_broker import EmbeddedBroker
from aietl.shared.events import PipelinesGenerated, Topic
from aietl.shared.migrate import upgrade_async
from aietl.shared.outbox import Outbox, OutboxRow, Relay
from aietl.shared.settings import Settings
from tests.support import eventually, fresh_postgres_database, read_topic

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "outbox-tests"


def generated(index: int, run: str) -> PipelinesGenerated:
    return PipelinesGenerated(
        project_id=PROJECT,
        instance_id=f"{run}-{index}",
        pipeline_name=f"{run}-pipeline-{index % 3}",
        template_id="full_load",
        template_version="1",
        instance_version=1,
        reason="manual",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_admin_url: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    else:
        with fresh_postgres_database(postgres_admin_url, "aietl_outbox") as url:
            yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    await upgrade_async(database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def broker_process() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        yield broker


async def _topics(servers: str) -> None:
    await ensure_topics(Settings(kafka_bootstrap_servers=servers), [Topic.PIPELINES_GENERATED])


def _quick_broker(servers: str) -> KafkaBroker:
    """A producer that gives up on an absent broker in seconds (the platform's waits longer)."""
    return KafkaBroker(servers, acks="all", enable_idempotence=False, request_timeout_ms=3_000, logger=None)


async def _published(servers: str, run: str, count: int) -> Counter[str]:
    """Instance ids of this run's events on the topic, with how often each was published: read until
    `count` are there, then on until the topic has been quiet for a second (a duplicate would show)."""
    consumer = AIOKafkaConsumer(
        Topic.PIPELINES_GENERATED, bootstrap_servers=servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    deadline, quiet_since = time.monotonic() + 40, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            records = [record for part in batches.values() for record in part]
            for record in records:
                instance = json.loads(record.value)["instance_id"]
                if instance.startswith(f"{run}-"):
                    seen[instance] += 1
                    quiet_since = time.monotonic()
            if sum(seen.values()) >= count and time.monotonic() - quiet_since > 1.0:
                break
    finally:
        await consumer.stop()
    return seen


async def _unsent(database: Database) -> list[OutboxRow]:
    async with database.sessions() as session:
        return list((await session.scalars(select(OutboxRow).where(OutboxRow.sent_at.is_(None)))).all())


async def test_rolled_back_events_are_never_published_committed_ones_once(
    database: Database, broker_process: EmbeddedBroker
) -> None:
    servers = broker_process.bootstrap_servers
    await _topics(servers)
    outbox = Outbox()
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            outbox.enqueue(session, [generated(0, "rolled-back")])
            raise RuntimeError("the state change failed")
    async with database.transaction() as session:
        outbox.enqueue(session, [generated(i, "committed") for i in range(5)])
    broker = _quick_broker(servers)
    await broker.connect()
    relay = Relay(database, broker, outbox, poll_seconds=0.1)
    task = asyncio.create_task(relay.run())
    try:
        published = await _published(servers, "committed", 5)
        assert published == Counter({f"committed-{i}": 1 for i in range(5)})
        assert await _unsent(database) == []
        assert await _published(servers, "rolled-back", 0) == Counter()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()


async def test_sigkill_between_commit_and_publish_loses_nothing(
    database_url: str, database: Database, broker_process: EmbeddedBroker
) -> None:
    """A process commits 200 events and is killed before its relay could publish one (its broker is
    unreachable); a relay elsewhere publishes each of them exactly once."""
    servers = broker_process.bootstrap_servers
    await _topics(servers)
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from faststream.kafka import KafkaBroker
        from aietl.shared.db import Database
        from aietl.shared.outbox import Outbox, Relay
        from tests.reliability.test_outbox import generated

        async def main():
            database = Database({database_url!r})
            outbox = Outbox()
            unreachable = KafkaBroker("127.0.0.1:1", request_timeout_ms=60_000, logger=None)
            relay = asyncio.create_task(Relay(database, unreachable, outbox, poll_seconds=0.05).run())
            async with database.transaction() as session:
                outbox.enqueue(session, [generated(i, "killed") for i in range(200)])
            await asyncio.sleep(0.3)  # the relay is woken and tries in vain
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    killed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(killed.communicate(), 60)
    assert killed.returncode == -9, stderr.decode()[-2_000:]
    assert len(await _unsent(database)) == 200

    broker = _quick_broker(servers)
    await broker.connect()
    # the dead process's lease expires; this relay takes over
    task = asyncio.create_task(Relay(database, broker, Outbox(), poll_seconds=0.2, lease_seconds=2).run())
    try:
        published = await _published(servers, "killed", 200)
        assert published == Counter({f"killed-{i}": 1 for i in range(200)})
        await eventually(lambda: _nothing_unsent(database), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()


async def _nothing_unsent(database: Database) -> bool:
    return not await _unsent(database)


async def test_broker_away_for_a_while(database: Database, broker_process: EmbeddedBroker) -> None:
    """Committed while the broker is down: kept, retried with backoff, published once it is back."""
    servers = broker_process.bootstrap_servers
    port = broker_process.port
    await _topics(servers)
    broker = _quick_broker(servers)
    await broker.connect()
    outbox = Outbox()
    task = asyncio.create_task(Relay(database, broker, outbox, poll_seconds=0.1).run())
    try:
        broker_process.stop()
        async with database.transaction() as session:
            outbox.enqueue(session, [generated(i, "away") for i in range(50)])
        await eventually(lambda: _tried(database), timeout=30)
        assert len(await _unsent(database)) == 50

        with EmbeddedBroker(port):
            await _topics(servers)
            published = await _published(servers, "away", 50)
            assert published == Counter({f"away-{i}": 1 for i in range(50)})
            await eventually(lambda: _nothing_unsent(database), timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.stop()


async def _tried(database: Database) -> bool:
    return any(row.attempts > 0 for row in await _unsent(database))


async def test_one_relay_at_a_time_in_commit_order(
    database: Database, broker_process: EmbeddedBroker
) -> None:
    """Two processes' relays share the database: per pipeline, events leave in the order committed."""
    servers = broker_process.bootstrap_servers
    await _topics(servers)
    brokers = [_quick_broker(servers), _quick_broker(servers)]
    for broker in brokers:
        await broker.connect()
    outboxes = [Outbox(), Outbox()]
    tasks = [
        asyncio.create_task(Relay(database, broker, outbox, poll_seconds=0.05).run())
        for broker, outbox in zip(brokers, outboxes, strict=True)
    ]
    try:
        for index in range(60):
            async with database.transaction() as session:
                outboxes[index % 2].enqueue(session, [generated(index, "ordered")])
        values = await read_topic(servers, Topic.PIPELINES_GENERATED, lambda v: b'"ordered-' in v, count=60)
        by_pipeline: dict[str, list[int]] = {}
        for value in values:
            event = json.loads(value)
            by_pipeline.setdefault(event["pipeline_name"], []).append(int(event["instance_id"].split("-")[1]))
        assert sum(len(order) for order in by_pipeline.values()) == 60
        for order in by_pipeline.values():
            assert order == sorted(order)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for broker in brokers:
            await broker.stop()
