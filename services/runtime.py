"""What a process holds while it runs: settings, the SQL store, the bus, and each service's components.

Workers and gateway routes of the same process share one `Runtime`, so a store opened by the
feature worker is the one the gateway's routes read (one chDB data dir per process, one pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker

from aietl.shared.bus import ConsumerProgress, ServiceRouter, create_broker
from aietl.shared.clickhouse import ClickHouse
from aietl.shared.db import Database
from aietl.shared.outbox import Outbox, Relay
from aietl.shared.settings import Settings

WORKERS = ("drift", "features", "templates", "predict", "vector_sink")
T = TypeVar("T")
ReadinessCheck = Callable[[], Awaitable[None]]


class Runtime:
    def __init__(self, settings: Settings, *, client_id: str = "aietl") -> None:
        self.settings = settings
        self.database = Database(settings.resolved_database_url)
        self.broker: KafkaBroker = create_broker(settings, client_id=client_id)
        self.readiness: dict[str, ReadinessCheck] = {
            "database": self.database.ping,
            "kafka": self._ping_kafka,
        }
        self._components: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._starters: list[Callable[[], Awaitable[None]]] = []
        self.outbox = Outbox()
        self._relay: asyncio.Task[None] | None = None
        self.roles: list[str] = []
        """What this process is: worker names and/or `gateway` (its heartbeat says so)."""
        self.roles_changed = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
        self.progress: ConsumerProgress | None = None
        """Lag and stalls of the partitions this process consumes (once it consumes)."""

    async def _ping_kafka(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka bootstrap servers do not answer")

    def component(self, key: str, factory: Callable[[], T]) -> T:
        """The process-wide instance of a service component, created on first use."""
        if key not in self._components:
            self._components[key] = factory()
        return self._components[key]

    def on_shutdown(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    def on_start(self, starter: Callable[[], Awaitable[None]]) -> None:
        """Background work a worker starts once its subscribers consume (the templates scheduler)."""
        self._starters.append(starter)

    async def start_consuming(self) -> None:
        """Start every subscriber, with the consumer-progress monitor (lag; a partition that stalls
        with lag turns readiness red) and the outbox relay beside them, then the workers' background
        work."""
        await self.broker.start()
        self.progress = ConsumerProgress(self.broker, self.settings.kafka_stall_seconds)
        self.readiness["consumers"] = self.progress.check
        self.background(self.progress.run())
        self.start_relay()
        self.start_heartbeat()
        for starter in self._starters:
            await starter()

    def start_relay(self) -> None:
        """The process's one outbox relay (once the broker is connected); idempotent."""
        if self._relay is None:
            relay = Relay(
                self.database, self.broker, self.outbox, poll_seconds=self.settings.outbox_poll_seconds
            )
            self._relay = self.background(relay.run())

    def add_role(self, role: str) -> None:
        """Record that this process serves `role`; a running heartbeat reports it at once."""
        if role not in self.roles:
            self.roles.append(role)
            self.roles_changed.set()

    def start_heartbeat(self) -> None:
        """Record this process's readiness and consumer lag in the database, for operators; idempotent."""
        if self._heartbeat is None:
            from aietl.services.ops.heartbeat import record_heartbeats

            self._heartbeat = self.background(record_heartbeats(self))

    def background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` until the runtime closes."""
        task = asyncio.create_task(work)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.on_shutdown(stop)
        return task

    def clickhouse(self) -> ClickHouse:
        """The process's ClickHouse client (chDB permits one data dir per process); services share it."""

        def connect() -> ClickHouse:
            settings = self.settings
            client = ClickHouse(
                settings.resolved_clickhouse_dsn,
                username=None if settings.clickhouse_host is None else settings.clickhouse_user,
                password=settings.clickhouse_password.get_secret_value(),
            )
            self.readiness["clickhouse"] = client.ping
            self.on_shutdown(client.close)
            return client

        return self.component("clickhouse", connect)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()
        self._closers.clear()
        await self.database.dispose()


def create_worker_router(name: str, runtime: Runtime) -> ServiceRouter:
    if name not in WORKERS:
        raise ValueError(f"unknown worker {name!r}; choose one of {', '.join(WORKERS)}")
    module = importlib.import_module(f"aietl.services.{name}.worker")
    router: ServiceRouter = module.create_router(runtime)
    runtime.add_role(name)
    return router
