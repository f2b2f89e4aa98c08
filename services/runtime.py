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

from shared.bus import ServiceRouter, create_broker, record_consumer_lag
from shared.clickhouse import ClickHouse
from shared.db import Database
from shared.settings import Settings

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
        self._background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []

    async def _ping_kafka(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka bootstrap servers do not answer")

    def component(self, key: str, factory: Callable[[], T]) -> T:
        """The process-wide instance of a service component, created on first use."""
        if key not in self._components:
            self._components[key] = factory()
        return self._components[key]  # type: ignore[no-any-return]

    def on_shutdown(self, closer: Callable[[], Awaitable[None]]) -> None:
        self._closers.append(closer)

    def run_in_background(self, name: str, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A worker's long-running job (e.g. scheduled model training): started with the consumers,
        cancelled at shutdown."""
        self._background.append((name, job))

    async def start_consuming(self) -> None:
        """Start every subscriber, with the consumer-lag gauge and the workers' background jobs beside."""
        await self.broker.start()
        tasks = [asyncio.create_task(record_consumer_lag(self.broker), name="consumer-lag")]
        tasks += [asyncio.create_task(job(), name=name) for name, job in self._background]

        async def stop_tasks() -> None:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        self.on_shutdown(stop_tasks)

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
    module = importlib.import_module(f"services.{name}.worker")
    router: ServiceRouter = module.create_router(runtime)
    return router
