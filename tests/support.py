"""Helpers for tests that wait on asynchronous effects, read topics, serve an app over HTTP and need a
database of their own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

import jwt
import psycopg2
import uvicorn
from aiokafka import AIOKafkaConsumer
from psycopg2 import sql

from aietl.services.gateway.security import ALGORITHM, KeyRing
from aietl.shared.embedded_broker import free_port

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


@contextmanager
def fresh_postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside `admin_url`'s, dropped afterwards (its connections
    too); yields its URL with the async driver, as the platform's settings use it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@asynccontextmanager
async def served(app: Any, *, lifespan: Literal["on", "off"] = "on") -> AsyncIterator[str]:
    """`app` served by uvicorn on a free loopback port inside the running event loop; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def signed_token(claims: dict[str, object], key: str) -> str:
    """A JWT signed as the gateway signs them (HS256, the key's id in the header), any claims."""
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": KeyRing.key_id(key)})
