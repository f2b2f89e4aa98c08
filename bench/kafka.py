"""The drift and features workers on tansu and on a three-broker Apache Kafka cluster, in one run.

For each broker: `aietl worker drift` and `aietl worker features` as processes (as deployed) on a
fresh PostgreSQL database; a backlog of events published at once gives events/s (from the first
event handled to the last), then events paced at `RATE` per second give the end-to-end latency
p50/p99 (the event's `occurred_at`, stamped just before publishing, to its processed marker).
On Kafka the topics are replicated three times with `min.insync.replicas=2`, and producers are
idempotent with `acks=all`; on tansu, `acks=all` alone. `AIETL_BENCH_SCALE` scales the event counts;
the CI smoke run uses one broker and a few events.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from aietl.services.features.domain import FeatureType
from aietl.services.features.registry import FeatureDefinition, register_feature
from aietl.shared.bus import create_broker, ensure_topics, publish_events
from aietl.shared.db import Database, ProcessedEvent
from aietl.shared.embedded_broker import EmbeddedBroker, free_port
from aietl.shared.events import Event, FeaturesWritten, FeatureValue, ObservedColumn, SchemaObserved
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from bench import Scale
from tests.kafka.cluster import running_cluster
from tests.support import fresh_postgres_database

RATE = 100  # events per second in the latency phase
POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def broker(name: str, brokers: int) -> Iterator[tuple[str, int]]:
    """(bootstrap servers, replication factor) of a broker started for this run."""
    if name == "tansu":
        with EmbeddedBroker() as embedded:
            yield embedded.bootstrap_servers, 1
        return
    with (
        tempfile.TemporaryDirectory() as directory,
        running_cluster(Path(directory), brokers=brokers) as cluster,
    ):
        yield cluster.bootstrap, brokers


def drift_events(project: str, count: int, offset: int) -> list[Event]:
    """Each observation a new version of one of 100 tables (a column added)."""
    return [
        SchemaObserved(
            project_id=project,
            connector_id="bench",
            table_name=f"t{n % 100}",
            columns=[ObservedColumn(name="id", type="bigint", nullable=False, primary_key=True)]
            + [ObservedColumn(name=f"c{k}", type="text") for k in range((offset + n) // 100 + 1)],
        )
        for n in range(count)
    ]


def feature_events(project: str, count: int, offset: int) -> list[Event]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        FeaturesWritten(
            project_id=project,
            values=[
                FeatureValue(
                    feature_name="bench_score",
                    entity_id=f"user_{(offset + n) % 500}",
                    value=float(n),
                    timestamp=start + timedelta(seconds=offset + n),
                )
            ],
        )
        for n in range(count)
    ]


async def prepare(database: Database, worker: str, project: str) -> None:
    if worker == "features":
        async with database.transaction() as session:
            await register_feature(
                session,
                project,
                FeatureDefinition("bench_score", FeatureType.FLOAT64, "user", 86_400, storage_type="offline"),
            )


async def markers(database: Database, worker: str, ids: set[str]) -> dict[str, datetime]:
    async with database.sessions() as session:
        rows = await session.execute(
            select(ProcessedEvent.event_id, ProcessedEvent.processed_at).where(
                ProcessedEvent.consumer == worker
            )
        )
        return {event_id: at for event_id, at in rows if event_id in ids}


async def wait_for(
    database: Database, worker: str, events: list[Event], process: subprocess.Popen[bytes]
) -> dict[str, datetime]:
    ids = {str(e.event_id) for e in events}
    while len(found := await markers(database, worker, ids)) < len(ids):
        if process.poll() is not None:
            raise RuntimeError(f"aietl worker {worker} exited with {process.returncode}")
        await asyncio.sleep(0.1)
    return found


def spawn_worker(worker: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`aietl worker NAME` in its own process, as deployed; its output in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "aietl.services.cli", "worker", worker],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(
    servers: str, replication: int, worker: str, workdir: Path, backlog_size: int, paced_size: int
) -> dict[str, Any]:
    with fresh_postgres_database(POSTGRES_ADMIN, "aietl_bench_kafka") as database_url:
        settings = Settings(
            kafka_bootstrap_servers=servers,
            kafka_replication_factor=replication,
            database_url=database_url,
            kafka_fetch_max_wait_ms=5,
            data_dir=workdir,
        )
        await upgrade_async(settings.resolved_database_url)
        await ensure_topics(settings)
        database = Database(settings.resolved_database_url)
        project = f"bench-{uuid.uuid4().hex[:6]}"
        await prepare(database, worker, project)
        make = drift_events if worker == "drift" else feature_events
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "AIETL_KAFKA_REPLICATION_FACTOR": str(replication),
            "AIETL_KAFKA_FETCH_MAX_WAIT_MS": "5",
            "AIETL_METRICS_PORT": str(free_port()),
            "AIETL_DATA_DIR": str(workdir),
            "AIETL_LOG_LEVEL": "WARNING",
        }
        process = spawn_worker(worker, env, workdir / f"{worker}.log")
        producer = create_broker(settings, client_id="bench-kafka")
        await producer.connect()
        try:
            warm = make(project, 10, 0)  # the group has joined once these are handled
            await publish_events(producer, warm)
            await wait_for(database, worker, warm, process)

            backlog = make(project, backlog_size, 10)
            began = time.perf_counter()
            await publish_events(producer, backlog)
            await wait_for(database, worker, backlog, process)
            throughput = backlog_size / (time.perf_counter() - began)

            paced = make(project, paced_size, 10 + backlog_size)
            for start in range(0, paced_size, RATE // 10):
                chunk = paced[start : start + RATE // 10]
                stamped = [e.model_copy(update={"occurred_at": datetime.now(UTC)}) for e in chunk]
                paced[start : start + len(chunk)] = stamped
                await publish_events(producer, stamped)
                await asyncio.sleep(0.1)
            done = await wait_for(database, worker, paced, process)
            latency = [(done[str(e.event_id)] - e.occurred_at).total_seconds() * 1000 for e in paced]
        finally:
            await producer.stop()
            process.terminate()
            await asyncio.to_thread(process.wait, 30)
            await database.dispose()
    return {
        "events_per_second": round(throughput),
        "latency_ms_p50": round(statistics.median(latency), 1),
        "latency_ms_p99": round(percentile(latency, 0.99), 1),
    }


async def figures(scale: Scale) -> dict[str, Any]:
    backlog, paced = scale.count(3_000, smoke=50), scale.count(1_000, smoke=20)
    brokers = 1 if scale.smoke else 3
    out: dict[str, Any] = {"backlog_events": backlog, "paced_events": paced, "paced_rate": RATE}
    for name in ("tansu", f"kafka{brokers}"):
        with broker(name, brokers) as (servers, replication), tempfile.TemporaryDirectory() as workdir:
            for worker in ("drift", "features"):
                print(f"    {worker} on {name} ...", file=sys.stderr, flush=True)
                (Path(workdir) / worker).mkdir()
                result = await measure(servers, replication, worker, Path(workdir) / worker, backlog, paced)
                for key, value in result.items():
                    out[f"{worker}_{name}_{key}"] = value
    return out


def run(scale: Scale) -> dict[str, Any]:
    return asyncio.run(figures(scale))
