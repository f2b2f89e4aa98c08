"""Run built-in templates on the tests' run targets in an isolated namespace: the `warehouse`
PostgreSQL database, a SQLite file and the embedded sandboxed ClickHouse (never the platform's
own database or ClickHouse)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aietl.services.runtime import Runtime
from aietl.services.templates.builtin import builtin
from aietl.services.templates.domain.config import validated
from aietl.services.templates.domain.rendering import render
from aietl.services.templates.service import service_of
from aietl.services.templates.targets import RunStats, SqlAlchemyTarget, Target

TYPES = {
    "postgres": {"int": "BIGINT", "text": "TEXT", "ts": "TIMESTAMPTZ"},
    "clickhouse": {"int": "Int64", "text": "Nullable(String)", "ts": "DateTime64(3, 'UTC')"},
    "sqlite": {"int": "INTEGER", "text": "TEXT", "ts": "TEXT"},
}


def sql_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


@dataclass
class Backend:
    dialect: str
    namespace: str
    target: Target
    runtime: Runtime
    engine: Any = None

    @classmethod
    async def open(cls, runtime: Runtime, dialect: str) -> Backend:
        namespace = f"t_{uuid.uuid4().hex[:10]}"
        connections = service_of(runtime).connections
        if dialect == "postgres":
            target: Any = await connections.target("", "warehouse")
            backend = cls(dialect, namespace, target, runtime, target.engine)
            await backend.execute(f"CREATE SCHEMA {namespace}")
        elif dialect == "sqlite":
            path = runtime.settings.data_dir / f"{namespace}.db"
            target = SqlAlchemyTarget.from_url(f"sqlite+aiosqlite:///{path}")
            backend = cls(dialect, namespace, target, runtime, target.engine)
        else:
            backend = cls(dialect, namespace, connections.sandbox(), runtime)
            await backend.execute(f"CREATE DATABASE {namespace}")
        return backend

    async def execute(self, sql: str) -> None:
        if self.dialect != "clickhouse":
            async with self.engine.begin() as connection:
                await connection.exec_driver_sql(sql)
        else:
            await self.target.command(sql)  # type: ignore[attr-defined]

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.dialect != "clickhouse":
            async with self.engine.connect() as connection:
                return [tuple(row) for row in (await connection.exec_driver_sql(sql)).all()]
        return [tuple(row) for row in await self.target.query(sql)]  # type: ignore[attr-defined]

    def table(self, name: str) -> dict[str, str]:
        return {"name": name} if self.dialect == "sqlite" else {"schema": self.namespace, "name": name}

    def qualified(self, name: str) -> str:
        return name if self.dialect == "sqlite" else f"{self.namespace}.{name}"

    async def create_source(self, name: str, columns: dict[str, str]) -> None:
        types = TYPES[self.dialect]
        spec = ", ".join(f"{column} {types[kind]}" for column, kind in columns.items())
        engine = " ENGINE = MergeTree ORDER BY tuple()" if self.dialect == "clickhouse" else ""
        await self.execute(f"CREATE TABLE {self.qualified(name)} ({spec}){engine}")

    async def insert(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        columns = list(rows[0])
        values = ", ".join("(" + ", ".join(sql_value(row[c]) for c in columns) + ")" for row in rows)
        await self.execute(f"INSERT INTO {self.qualified(name)} ({', '.join(columns)}) VALUES {values}")

    async def run(self, pattern: str, config: dict[str, Any]) -> RunStats:
        template = builtin(f"{pattern}_{self.dialect}")
        rendered = render(template.code, template.dialect, validated(template.config_schema, config))
        return await self.target.execute(rendered.statements)

    async def drop(self) -> None:
        if self.dialect == "postgres":
            await self.execute(f"DROP SCHEMA {self.namespace} CASCADE")
        elif self.dialect == "sqlite":
            await self.target.close()
        else:
            await self.execute(f"DROP DATABASE {self.namespace}")


def normalized(rows: Sequence[tuple[Any, ...]], flags: int = 0) -> list[tuple[Any, ...]]:
    """Database rows comparable with the oracle: the last `flags` columns as booleans."""
    result = []
    for row in rows:
        values = list(row)
        for index in range(len(values) - flags, len(values)):
            values[index] = bool(values[index])
        result.append(tuple(values))
    return sorted(result, key=lambda row: tuple((value is None, value) for value in row))
