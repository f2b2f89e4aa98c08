"""ClickHouse for async code: chDB in-process (embedded, tests) or a ClickHouse server, same SQL.

chDB allows one data directory per process, so a process holds ONE client (see `Runtime.clickhouse`),
and every service keeps its tables in its own database on it. The clickhouse-connect client is
synchronous and not safe for concurrent use: calls run one at a time on a dedicated thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
RECENT_SUCCESS_SECONDS = 5.0


class ClickHouse:
    def __init__(self, dsn: str, *, username: str | None = None, password: str | None = None) -> None:
        self.dsn = dsn
        self._credentials: dict[str, Any] = {"username": username, "password": password} if username else {}
        self._client: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._last_success = float("-inf")

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def _connect(self) -> Any:
        if self._client is None:
            import clickhouse_connect

            self._client = clickhouse_connect.get_client(dsn=self.dsn, **self._credentials)
        return self._client

    async def run(self, call: Callable[[Any], T]) -> T:
        """Run `call(client)` on the ClickHouse thread (for batches of statements that belong together)."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, lambda: call(self._connect()))
        self._last_success = time.monotonic()
        return result

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await self.run(lambda client: client.command(sql, parameters=parameters))

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return await self.run(lambda client: client.query(sql, parameters=parameters).result_rows)

    async def query_df(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await self.run(lambda client: client.query_df(sql, parameters=parameters))

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        if rows:
            await self.run(lambda client: client.insert(table, list(rows), column_names=list(column_names)))

    async def ping(self) -> None:
        """A call that just succeeded proves liveness; a probe must not queue behind a long query."""
        if time.monotonic() - self._last_success > RECENT_SUCCESS_SECONDS:
            await self.query("SELECT 1")

    async def close(self) -> None:
        if self._client is not None:
            await self.run(lambda client: client.close())
            self._client = None
        self._executor.shutdown(wait=False)
