"""Foundation figures: cold start of `aietl up` and bus round-trip latency through one worker.

The round trip is publish → worker (typed handler, exactly-once bookkeeping in the SQL store,
output published) → output consumed, one event at a time, on the embedded broker (tansu).
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
from pathlib import Path
from typing import Any, ClassVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.shared.bus import ServiceRouter, create_broker, ensure_topics, publish_event
from aietl.shared.db import Database, process_once
from aietl.shared.embedded_broker import EmbeddedBroker, free_port
from aietl.shared.events import Event
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from bench import Scale
from tests.support import fresh_postgres_database

POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class Ping(Event):
    topic: ClassVar[str] = "bench.ping"
    n: int


class Pong(Event):
    topic: ClassVar[str] = "bench.pong"
    n: int


def cold_start_seconds(times: int) -> dict[str, float]:
    """Command → gateway answering /health with every worker subscribed (the 'ready' line)."""
    figures: list[float] = []
    for attempt in range(times):
        with tempfile.TemporaryDirectory() as folder:
            port, broker_port = free_port(), free_port()
            started = time.perf_counter()
            env = {
                k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
            }
            process = subprocess.Popen(  # noqa: S603 - our own CLI
                [
                    sys.executable,
                    "-m",
                    "aietl.services.cli",
                    "up",
                    "--data-dir",
                    folder,
                    "--port",
                    str(port),
                    "--broker-port",
                    str(broker_port),
                ],
                cwd=folder,
                env={**env, "AIETL_ADMIN_PASSWORD": "bench-password"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if process.poll() is not None or time.perf_counter() - started > 120:
                        raise RuntimeError("aietl up did not start")
                    time.sleep(0.05)
                figures.append(time.perf_counter() - started)
            finally:
                process.terminate()
                process.wait(30)
        print(f"    cold start {attempt + 1}/{times}: {figures[-1]:.2f}s", file=sys.stderr, flush=True)
    return {
        "cold_start_seconds_median": round(statistics.median(figures), 2),
        "cold_start_seconds_max": round(max(figures), 2),
    }


async def round_trip(database_url: str, label: str, count: int) -> dict[str, Any]:
    with EmbeddedBroker() as embedded:
        settings = Settings(
            kafka_bootstrap_servers=embedded.bootstrap_servers,
            kafka_session_timeout_ms=6_000,
            kafka_fetch_max_wait_ms=5,
        )
        await upgrade_async(database_url)
        database = Database(database_url)
        suffix = uuid.uuid4().hex[:6]
        topic_in, topic_out = f"bench.ping.{suffix}", f"bench.pong.{suffix}"
        await ensure_topics(settings, [topic_in, topic_out, f"{topic_in}.dlq"])
        broker = create_broker(settings)
        worker = ServiceRouter(broker, settings, "bench-worker")
        listener = ServiceRouter(broker, settings, "bench-listener")
        arrived: dict[int, asyncio.Future[float]] = {}

        @worker.consumes(topic_in)
        async def on_ping(event: Ping) -> None:
            async def work(_session: AsyncSession) -> Pong:
                return Pong(project_id=event.project_id, n=event.n)

            pong = await process_once(database, "bench-worker", event.event_id, work, Pong)
            assert pong is not None
            await publish_event(broker, pong, topic=topic_out)

        @listener.consumes(topic_out)
        async def on_pong(event: Pong) -> None:
            future = arrived.get(event.n)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

        broker.include_router(worker)
        broker.include_router(listener)
        await broker.start()
        latencies: list[float] = []
        try:
            for n in range(-20, count):  # the first 20 warm the groups up and are not counted
                arrived[n] = asyncio.get_running_loop().create_future()
                sent = time.perf_counter()
                await publish_event(broker, Ping(project_id="bench", n=n), topic=topic_in)
                received = await asyncio.wait_for(arrived[n], 30)
                if n >= 0:
                    latencies.append((received - sent) * 1_000)
        finally:
            await broker.stop()
            await database.dispose()
    latencies.sort()
    return {
        f"bus_round_trip_{label}_p50_ms": round(latencies[len(latencies) // 2], 2),
        f"bus_round_trip_{label}_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        f"bus_round_trip_{label}_events": len(latencies),
    }


def run(scale: Scale) -> dict[str, Any]:
    figures: dict[str, Any] = cold_start_seconds(scale.count(3, smoke=1))
    trips = scale.count(1_000, smoke=20)
    with tempfile.TemporaryDirectory() as folder:
        figures |= asyncio.run(
            round_trip(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", "sqlite", trips)
        )
    with fresh_postgres_database(POSTGRES_ADMIN, "aietl_bench") as url:
        figures |= asyncio.run(round_trip(url, "postgres", trips))
    return figures
