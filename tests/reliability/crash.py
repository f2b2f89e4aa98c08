"""The crash harness, one for every worker: run `aietl worker <name>` as a process, stream events at
it, SIGKILL it at random points, restart it, and return once its consumer group has committed every
event that was streamed.

Progress and completion are read from the broker, not from the worker's store: the group's
committed offsets on the topic, against the offsets the broker gave the streamed events. So the
same code serves workers that keep `processed_events` markers (drift, features) and those that write
idempotently elsewhere (predict to ClickHouse, vector_sink to Milvus). Each scenario then checks the
effects in its own store.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from aietl.shared.events import Event
from tests.reliability.conftest import ROOT, Service, Stack

log = structlog.get_logger(__name__)

KILLS = int(os.environ.get("AIETL_RELIABILITY_KILLS", "3"))
STREAM_SECONDS = 20.0  # the events arrive over this long: the worker consumes while its topic fills
STALL_SECONDS = 120.0  # a worker that commits nothing for this long (restarts included) is stuck
SLICES = 40  # the stream is published in this many slices, evenly over its duration


def run_seed() -> int:
    seed = int(os.environ.get("AIETL_RELIABILITY_SEED", random.randrange(1_000_000)))
    print(f"\ncrash test seed: {seed} (AIETL_RELIABILITY_SEED replays it)")
    return seed


@dataclass
class CrashRun:
    """What happened: events the group had committed at each kill, and how many processes ran."""

    events: int
    kills: list[int]
    starts: int
    seconds: float


async def stream(
    servers: str,
    topic: str,
    events: Sequence[Event],
    seconds: float,
    ends: dict[int, int],
    consumed: Callable[[], Awaitable[int]],
    *,
    idempotent: bool = False,
) -> None:
    """Publish the events spread over about `seconds`, keyed (in order per key), acks=all (and
    idempotent where the broker allows: a retry after a broker failure neither duplicates nor
    reorders); `ends` gets, per partition, the offset just past the last event the broker
    acknowledged there.

    The stream stays at most a tenth of the events ahead of `consumed()`: a fast worker cannot
    finish the stream while a slow restart is under way, so every kill lands mid-stream."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", linger_ms=5, enable_idempotence=idempotent
    )
    await producer.start()
    try:
        size = max(1, len(events) // SLICES)
        window = max(size, len(events) // 10)
        for start in range(0, len(events), size):
            while start - await consumed() > window:
                await asyncio.sleep(0.05)
            sends = [
                await producer.send(topic, e.model_dump_json().encode(), key=e.kafka_key())
                for e in events[start : start + size]
            ]
            for sent in await asyncio.gather(*sends):
                ends[sent.partition] = max(ends.get(sent.partition, 0), sent.offset + 1)
            await asyncio.sleep(seconds / SLICES)
    finally:
        await producer.stop()


class GroupOffsets:
    """A consumer group's committed offsets on one topic, as the broker reports them."""

    def __init__(self, servers: str, group: str, topic: str, partitions: int) -> None:
        self.servers = servers
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="aietl-crash-test")
        self._base: dict[int, int] = {}

    async def __aenter__(self) -> GroupOffsets:
        # Progress counts from the topic's end as it is now: what other tests left on the topic
        # (the gateway crash test's observations, say) is consumed too, but not counted.
        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(self.partitions)
        finally:
            await consumer.stop()
        self._base = {tp.partition: offset for tp, offset in ends.items()}
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._admin.close()

    async def committed(self) -> dict[int, int]:
        deadline = time.monotonic() + 60
        while True:
            try:
                offsets = await self._admin.list_consumer_group_offsets(
                    self.group, partitions=self.partitions
                )
                break
            except KafkaError as error:
                # Apache Kafka: the coordinator is still loading, moving, or its broker just died
                if not error.retriable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        return {
            tp.partition: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0
        }

    async def progress(self) -> int:
        """Messages committed beyond the topic's end when this object was entered."""
        committed = await self.committed()
        return sum(max(0, committed.get(partition, 0) - base) for partition, base in self._base.items())

    async def covers(self, ends: dict[int, int]) -> bool:
        committed = await self.committed()
        return all(committed.get(partition, 0) >= end for partition, end in ends.items())


async def wait_for_commits(
    offsets: GroupOffsets, done: Callable[[], Awaitable[bool]], what: str, workers: Sequence[Service]
) -> None:
    """Poll until `done()`; fail as soon as one of `workers` has exited, or once the group has
    committed nothing for `STALL_SECONDS` (no fixed deadline: a loaded machine is slow, not stuck)."""
    last, moved = -1, time.monotonic()
    while not await done():
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"{worker.name} exited ({worker.process.returncode}) before {what}:\n{worker.output()}"
                )
        if (progress := await offsets.progress()) != last:
            last, moved = progress, time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            raise AssertionError(
                f"not {what}: nothing committed for {STALL_SECONDS}s (at {last}):\n{workers[0].output()}"
            )
        await asyncio.sleep(0.1)


Disruption = Callable[[], Awaitable[None]]


async def kill_and_restart_while_streaming(
    stack: Stack,
    worker: str,
    topic: str,
    events: Sequence[Event],
    rng: random.Random,
    *,
    env: dict[str, str] | None = None,
    seconds: float = STREAM_SECONDS,
    replicas: int = 1,
    disruptions: Sequence[Disruption] | None = None,
) -> CrashRun:
    """Run `replicas` processes of `aietl worker <worker>` (one consumer group, `worker`, sharing the
    partitions), stream `events` to `topic` and disrupt the run at random points: by default SIGKILL
    one replica (chosen at random) `KILLS` times and start another in its place, or else run each of
    `disruptions` in turn (a broker killed, say). Return once the group has committed every streamed
    event and the last workers have stopped (so their stores are closed)."""
    began = time.monotonic()
    servers = stack.settings.resolved_kafka_servers
    starts = 0

    def start() -> Service:
        nonlocal starts
        starts += 1
        return stack.spawn(f"{worker}-worker", "worker", worker, port_env="AIETL_METRICS_PORT", **(env or {}))

    processes = [start() for _ in range(replicas)]

    async def kill_a_replica() -> None:
        victim = rng.randrange(len(processes))
        processes[victim].kill()
        processes[victim] = start()

    steps = list(disruptions) if disruptions is not None else [kill_a_replica] * KILLS
    async with GroupOffsets(servers, worker, topic, stack.settings.kafka_partitions) as offsets:
        ends: dict[int, int] = {}
        publishing = asyncio.create_task(
            stream(
                servers,
                topic,
                events,
                seconds,
                ends,
                offsets.progress,
                idempotent=stack.broker.name == "kafka",
            )
        )
        # Disruptions spread over the processing: once the group has committed a random number of
        # the events (and more than at the last one), plus a random delay, so that a kill lands
        # anywhere: mid-handler, between a store write and the offset commit, while fetching.
        targets = sorted(rng.randrange(len(events) // 20, len(events) * 4 // 5) for _ in steps)
        kills: list[int] = []
        try:
            for target, disrupt in zip(targets, steps, strict=True):
                goal = max(target, kills[-1] + 1 if kills else 1)

                async def reached(goal: int = goal) -> bool:
                    if publishing.done() and publishing.exception() is not None:
                        publishing.result()  # a failed stream fails the test here
                    return await offsets.progress() >= goal

                await wait_for_commits(offsets, reached, f"{goal} events committed", processes)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                kills.append(await offsets.progress())
                await disrupt()
                log.info("disrupted", worker=worker, committed_at=kills[-1], of=len(events))
            await publishing

            async def drained() -> bool:
                return await offsets.covers(ends)

            await wait_for_commits(offsets, drained, f"all {len(events)} events committed", processes)
            for process in processes:
                process.stop()  # graceful or not, the at-least-once guarantees hold
        finally:
            publishing.cancel()
            for process in processes:
                process.kill()
    assert len(kills) == len(steps) and kills[-1] < len(events), f"disruptions not mid-stream: {kills}"
    run = CrashRun(len(events), kills, starts, time.monotonic() - began)
    print(
        f"{worker}: {run.events} events, {replicas} replicas, committed at the disruptions {run.kills}, "
        f"{run.starts} starts, {run.seconds:.0f}s"
    )
    return run


def chdb_query(dsn: str, *queries: str, timeout: float = 180.0) -> list[list[list[Any]]]:
    """Run `queries` on a chDB data dir in a process of its own (chDB allows one data dir per process,
    and this one may hold the session's already); the rows of each SELECT, as JSON values (other
    statements give no rows)."""
    script = (
        "import json, sys\n"
        "import clickhouse_connect\n"
        "client = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
        "def run(q):\n"
        "    if q.lstrip().upper().startswith('SELECT'):\n"
        "        return [list(row) for row in client.query(q).result_rows]\n"
        "    client.command(q)\n"
        "    return []\n"
        "out = [run(q) for q in json.load(sys.stdin)]\n"
        "client.close()\n"
        "print(json.dumps(out, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, dsn],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"chDB read failed:\n{done.stderr[-4_000:]}"
    result: list[list[list[Any]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
