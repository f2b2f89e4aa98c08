"""Store interfaces (Feast style: a few methods, one module per backend) and the factory from settings.

Online stores hold the latest value per (project, view, entity, feature version) and apply "an older
event time never overwrites a newer one". Offline stores keep every value and answer point-in-time
queries in the database. The TTL rule itself lives in `domain`, so every backend serves alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.features.domain import OfflineRow, OnlineWrite
from aietl.services.runtime import Runtime
from aietl.shared.db import Database


@dataclass(frozen=True, slots=True)
class HistoricalFeature:
    field: str  # name@vN
    ttl_us: int


@dataclass(frozen=True, slots=True)
class Window:
    """Rows to materialise: event time in [low, high), or write time in (low, high] (incremental)."""

    by: Literal["event", "written"]
    low: int
    high: int

    def condition(self, low: str, high: str) -> str:
        """SQL condition with the given placeholders for the bounds (each backend has its own syntax)."""
        if self.by == "event":
            return f"event_us >= {low} AND event_us < {high}"
        return f"written_us > {low} AND written_us <= {high}"


class EntityValues(NamedTuple):
    """One entity's values for the online store: `values_json` is a JSON object field -> payload
    (payloads as `domain.encode_online` makes them); the key should live until `expire_at_us`."""

    entity_id: str
    expire_at_us: int
    value_count: int
    values_json: str


class OnlineStore(Protocol):
    async def write(self, project: str, rows: Sequence[OnlineWrite]) -> None:
        """Store each value unless the stored one has a newer event time (atomically per entity)."""

    async def write_entities(self, project: str, view: str, entities: Sequence[EntityValues]) -> None:
        """`write` for values grouped per entity (materialisation), same rules."""

    async def read(
        self, project: str, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[bytes | None]]:
        """Encoded values per entity (in order), per field (in order); None where nothing is stored."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class OfflineStore(Protocol):
    async def write(
        self,
        project: str,
        rows: Sequence[OfflineRow],
        written_us: int,
        session: AsyncSession | None = None,
    ) -> None:
        """Upsert by (feature version, entity, event time): a redelivered value changes nothing.

        `session` is the caller's open transaction (a worker's, holding its processed-event marker): a
        store in that same database writes through it, so the values commit with the marker and no
        second connection waits for the marker's lock (SQLite has one writer at a time)."""

    async def historical(
        self, project: str, entity_rows: Sequence[tuple[str, int]], features: Sequence[HistoricalFeature]
    ) -> list[list[str | None]]:
        """Per feature (in order), per entity row (in order): JSON of the latest value at or before the
        row's time and within TTL, else None. Computed in the database."""

    async def online_copy_parts(self, project: str, fields: Sequence[str], window: Window) -> int:
        """Into how many parts (by entity) to split copying `window` to the online store: the store
        queries part k+1 while part k is written online (1 = one query)."""

    async def latest_for_online(
        self,
        project: str,
        ttl_by_field: dict[str, int],
        window: Window,
        now_us: int,
        part: tuple[int, int] = (0, 1),
    ) -> list[EntityValues]:
        """Per entity (of part `part[0]` of `part[1]`): the latest value of each field inside `window`
        and not yet past its TTL at `now_us`, already encoded for the online store (grouped and
        encoded in the database, so materialising a million values costs Python per entity, not per
        value)."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def online_store_from_settings(runtime: Runtime) -> OnlineStore:
    """`Settings.resolved_features_online_store`: Redis when `REDIS_URL` is set, else SQLite under
    data_dir, unless `AIETL_FEATURES_ONLINE_STORE` says otherwise."""
    url = runtime.settings.resolved_features_online_store
    if url.startswith(("redis://", "rediss://", "unix://")):
        from aietl.services.features.stores.redis_online import RedisOnlineStore

        return RedisOnlineStore(url)
    if url.startswith("sqlite:///"):
        from aietl.services.features.stores.sqlite_online import SqliteOnlineStore

        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteOnlineStore(str(path))
    raise ValueError(f"AIETL_FEATURES_ONLINE_STORE {url!r}: use redis, sqlite, redis://..., sqlite:///path")


def offline_store_from_settings(runtime: Runtime) -> OfflineStore:
    """`features_offline_store`: unset/"sql" = the SQL database, "clickhouse" (CLICKHOUSE_* settings),
    or a SQL URL of a database of its own (migrated like the main one)."""
    choice = runtime.settings.features_offline_store
    if choice == "clickhouse":
        from aietl.services.features.stores.clickhouse_offline import ClickHouseOfflineStore

        return ClickHouseOfflineStore(runtime.clickhouse())
    from aietl.services.features.stores.sql_offline import SqlOfflineStore

    if choice in (None, "sql"):
        return SqlOfflineStore(runtime.database)
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("sqlite://", "sqlite+aiosqlite://")):
        if choice.startswith(plain):
            choice = driver + choice.removeprefix(plain)
    database = Database(choice)
    runtime.on_shutdown(database.dispose)
    return SqlOfflineStore(database)
