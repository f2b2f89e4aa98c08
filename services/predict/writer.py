"""Group commit of run rows: the ingests that arrive during an insert share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence


class BatchWriter:
    """Group commit: a caller waits until its rows are stored; rows arriving meanwhile go together next."""

    def __init__(self, write: Callable[[list[Sequence[object]]], Awaitable[None]], max_rows: int) -> None:
        self._write = write
        self._max_rows = max_rows
        self._pending: list[tuple[list[Sequence[object]], asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0

    async def write(self, rows: list[Sequence[object]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch: list[tuple[list[Sequence[object]], asyncio.Future[None]]] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max_rows):
                rows, future = self._pending.pop(0)
                batch.append((rows, future))
                size += len(rows)
            try:
                await self._write([row for rows, _ in batch for row in rows])
                self.batches += 1
            except Exception as error:  # every waiting caller sees the failure and its handler retries
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
