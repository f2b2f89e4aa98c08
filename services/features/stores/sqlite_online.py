"""Online store on an embedded SQLite file (the default, as Feast does locally).

One row per (project, view, entity, feature version); an upsert whose WHERE keeps the newer event
time makes "older writes are ignored" atomic. Rows past their expiry are swept on write.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite
import orjson

from aietl.services.features.domain import OnlineWrite, decode_online
from aietl.services.features.stores import EntityValues

SCHEMA = """
CREATE TABLE IF NOT EXISTS online_values (
    project_id TEXT NOT NULL, view TEXT NOT NULL, entity_id TEXT NOT NULL, field TEXT NOT NULL,
    event_us INTEGER NOT NULL, payload BLOB NOT NULL, expire_at_us INTEGER NOT NULL,
    PRIMARY KEY (project_id, view, entity_id, field)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_online_values_expiry ON online_values (expire_at_us);
"""
UPSERT_NEWER = """
INSERT INTO online_values (project_id, view, entity_id, field, event_us, payload, expire_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project_id, view, entity_id, field) DO UPDATE SET
    event_us = excluded.event_us, payload = excluded.payload, expire_at_us = excluded.expire_at_us
WHERE excluded.event_us >= online_values.event_us
"""
SWEEP_EVERY_SECONDS = 60.0
MAX_VARIABLES = 900


class SqliteOnlineStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: aiosqlite.Connection | None = None
        self._last_sweep = 0.0

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            connection = await aiosqlite.connect(self.path)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.executescript(SCHEMA)
            self._connection = connection
        return self._connection

    async def write(self, project: str, rows: Sequence[OnlineWrite]) -> None:
        connection = await self._connect()
        if time.monotonic() - self._last_sweep > SWEEP_EVERY_SECONDS:
            self._last_sweep = time.monotonic()
            await connection.execute(
                "DELETE FROM online_values WHERE expire_at_us < ?", (int(time.time() * 1_000_000),)
            )
        await connection.executemany(
            UPSERT_NEWER,
            [(project, r.view, r.entity_id, r.field, r.event_us, r.payload, r.expire_at_us) for r in rows],
        )
        await connection.commit()

    async def write_entities(self, project: str, view: str, entities: Sequence[EntityValues]) -> None:
        await self.write(
            project,
            [
                OnlineWrite(
                    view, entity_id, field, decode_online(payload.encode())[0], payload.encode(), expire_at_us
                )
                for entity_id, expire_at_us, _count, values_json in entities
                for field, payload in orjson.loads(values_json).items()
            ],
        )

    async def read(
        self, project: str, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[bytes | None]]:
        connection = await self._connect()
        wanted = set(fields)
        found: dict[tuple[str, str], bytes] = {}
        for start in range(0, len(entity_ids), MAX_VARIABLES):
            chunk = entity_ids[start : start + MAX_VARIABLES]
            cursor = await connection.execute(
                "SELECT entity_id, field, payload FROM online_values WHERE project_id = ? AND view = ? "
                f"AND entity_id IN ({','.join('?' * len(chunk))})",
                (project, view, *chunk),
            )
            for entity_id, field, payload in await cursor.fetchall():
                if field in wanted:
                    found[(entity_id, field)] = payload
        return [[found.get((entity_id, field)) for field in fields] for entity_id in entity_ids]

    async def ping(self) -> None:
        connection = await self._connect()
        await connection.execute("SELECT 1")

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
