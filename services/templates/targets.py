"""Where pipeline code runs: one small protocol, a SQLAlchemy backend (PostgreSQL, SQLite), a ClickHouse
server, and (in `clickhouse_sandbox`) the embedded sandboxed chDB.

A run executes the rendered statements in order; the statement that returns `rows_read`,
`rows_written` and `high_watermark` reports what the run did. PostgreSQL and SQLite run the whole
script in one transaction; ClickHouse has none, so its templates are written to be rerunnable.
Every target is a connection the operator or a project maintainer configured, with that
connection's own (least-privileged) credentials: never the platform's metadata database or its
ClickHouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from aietl.services.templates.domain.model import SqlDialect, connection_dialect
from aietl.services.templates.domain.rendering import Statement
from aietl.shared.clickhouse import ClickHouse

STATS_COLUMNS = ("rows_read", "rows_written")
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class RunStats:
    rows_read: int = 0
    rows_written: int = 0
    high_watermark: str | None = None
    warning: str | None = None
    """The stats row's optional `warning` column: the run ended, but something needs a look."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunStats:
        watermark = row.get("high_watermark")
        return cls(
            rows_read=int(row.get("rows_read") or 0),
            rows_written=int(row.get("rows_written") or 0),
            high_watermark=None if watermark in (None, "") else str(watermark),
            warning=str(row["warning"]) if row.get("warning") else None,
        )


def is_stats(columns: Sequence[str]) -> bool:
    return all(name in columns for name in STATS_COLUMNS)


class Target(Protocol):
    dialect: SqlDialect

    async def execute(self, statements: Sequence[Statement], batch: str | None = None) -> RunStats: ...

    async def columns(self, table_sql: str) -> list[str]:
        """The columns of a table (quoted, qualified SQL name); raises when it cannot be read."""
        ...

    async def ping(self) -> None:
        """`SELECT 1` there; raises when the target cannot be reached or refuses."""
        ...

    async def close(self) -> None: ...


class SqlAlchemyTarget:
    """PostgreSQL (asyncpg) or SQLite (aiosqlite): the run is one transaction, all or nothing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = connection_dialect(str(engine.url))

    @classmethod
    def from_url(cls, url: str) -> SqlAlchemyTarget:
        if url.startswith("sqlite"):
            return cls(create_async_engine(url, poolclass=NullPool))
        return cls(
            create_async_engine(
                url,
                pool_size=2,
                max_overflow=4,
                pool_pre_ping=True,
                connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
            )
        )

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def columns(self, table_sql: str) -> list[str]:
        async with self.engine.connect() as connection:
            result = await connection.exec_driver_sql(f"SELECT * FROM {table_sql} WHERE 1 = 0")
            return list(result.keys())

    async def execute(self, statements: Sequence[Statement], batch: str | None = None) -> RunStats:
        """`batch`: the JSON array bound to `$1` (PostgreSQL) in statements that use it."""
        stats = RunStats()
        async with self.engine.begin() as connection:
            for statement in statements:
                parameters = (batch,) if statement.uses_batch else None
                result = await connection.exec_driver_sql(statement.sql, parameters)
                if statement.returns_rows:
                    row = result.mappings().first()
                    if row is not None and is_stats(list(row.keys())):
                        stats = RunStats.from_row(dict(row))
        return stats

    async def close(self) -> None:
        await self.engine.dispose()


class ClickHouseTarget:
    """A ClickHouse server, through a client of its own with the connection's credentials."""

    dialect: SqlDialect = "clickhouse"

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    @classmethod
    def from_url(cls, url: str) -> ClickHouseTarget:
        return cls(ClickHouse(url))

    async def ping(self) -> None:
        await self.clickhouse.query("SELECT 1")

    async def columns(self, table_sql: str) -> list[str]:
        rows = await self.clickhouse.query(f"DESCRIBE TABLE {table_sql}")
        return [str(row[0]) for row in rows]

    async def close(self) -> None:
        await self.clickhouse.close()

    async def execute(self, statements: Sequence[Statement], batch: str | None = None) -> RunStats:
        if batch is not None or any(statement.uses_batch for statement in statements):
            raise ValueError("ClickHouse pipelines consume topics with the Kafka engine, not batches")

        def run_all(client: Any) -> RunStats:
            stats = RunStats()
            for statement in statements:
                if not statement.returns_rows:
                    client.command(statement.sql)
                    continue
                result = client.query(statement.sql)
                if result.result_rows and is_stats(result.column_names):
                    stats = RunStats.from_row(
                        dict(zip(result.column_names, result.result_rows[0], strict=True))
                    )
            return stats

        return await self.clickhouse.run(run_all)
