"""Helpers for tests that wait on asynchronous effects and read topics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Await `probe` until it returns a truthy value; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def read_topic(
    servers: str, topic: str, predicate: Callable[[bytes], bool], *, count: int = 1, timeout: float = 30.0
) -> list[bytes]:
    """Read `topic` from the beginning until `count` values match `predicate`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(r.value for r in records if r.value is not None and predicate(r.value))
    finally:
        await consumer.stop()
    if len(found) < count:
        raise AssertionError(f"{len(found)} of {count} matching messages on {topic} within {timeout}s")
    return found
