"""Offline store on PostgreSQL or SQLite through SQLAlchemy (table `features_offline_values`).

Point-in-time retrieval runs in the database: the entity rows go to a temporary table (COPY on
PostgreSQL) and each feature is one LATERAL lookup (PostgreSQL) or correlated subquery (SQLite) that
walks the primary-key index backwards from the row's time and stops at the first value, which must
also be within TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from aietl.services.features.domain import OfflineRow
from aietl.services.features.stores import EntityValues, HistoricalFeature, Window
from aietl.services.features.tables import OfflineValue
from aietl.shared.db import Database

ENTITY_ROWS = "features_entity_rows"
INSERT_BATCH = 5_000
_LOOKUP = (
    "SELECT v.value FROM features_offline_values v WHERE v.project_id = :project "
    "AND v.feature = :f{i} AND v.entity_id = e.entity_id AND v.event_us <= e.at_us "
    "AND v.event_us >= e.at_us - :ttl{i} ORDER BY v.event_us DESC LIMIT 1"
)


class SqlOfflineStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.is_postgres = not database.is_sqlite

    async def write(
        self,
        project: str,
        rows: Sequence[OfflineRow],
        written_us: int,
        session: AsyncSession | None = None,
    ) -> None:
        records = [
            {
                "project_id": project,
                "feature": row.feature,
                "entity_id": row.entity_id,
                "event_us": row.event_us,
                "value": row.value_json,
                "written_us": written_us,
            }
            for row in rows
        ]
        dialect_insert = postgresql.insert if self.is_postgres else sqlite.insert
        statement = dialect_insert(OfflineValue)
        statement = statement.on_conflict_do_update(
            index_elements=["project_id", "feature", "entity_id", "event_us"],
            set_={"value": statement.excluded.value, "written_us": statement.excluded.written_us},
        )
        if session is not None and session.bind is self.database.engine:
            await self._insert(await session.connection(), statement, records)
            return
        async with self.database.engine.begin() as connection:
            await self._insert(connection, statement, records)

    @staticmethod
    async def _insert(connection: AsyncConnection, statement: Any, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), INSERT_BATCH):
            await connection.execute(statement, records[start : start + INSERT_BATCH])

    async def historical(
        self, project: str, entity_rows: Sequence[tuple[str, int]], features: Sequence[HistoricalFeature]
    ) -> list[list[str | None]]:
        parameters: dict[str, Any] = {"project": project}
        for i, feature in enumerate(features):
            parameters[f"f{i}"] = feature.field
            parameters[f"ttl{i}"] = feature.ttl_us
        if self.is_postgres:
            columns = ", ".join(f"f{i}.value" for i in range(len(features)))
            joins = " ".join(
                f"LEFT JOIN LATERAL ({_LOOKUP.format(i=i)}) f{i} ON true" for i in range(len(features))
            )
            query = f"SELECT {columns} FROM {ENTITY_ROWS} e {joins} ORDER BY e.row_id"
        else:
            columns = ", ".join(f"({_LOOKUP.format(i=i)})" for i in range(len(features)))
            query = f"SELECT {columns} FROM {ENTITY_ROWS} e ORDER BY e.row_id"
        async with self.database.engine.begin() as connection:
            await self._upload_entity_rows(connection, entity_rows)
            result = await connection.execute(text(query), parameters)
            rows = result.all()
        return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in features]

    async def _upload_entity_rows(
        self, connection: AsyncConnection, entity_rows: Sequence[tuple[str, int]]
    ) -> None:
        """Entity rows into a temporary table of this transaction (COPY on PostgreSQL)."""
        if self.is_postgres:
            await connection.execute(
                text(
                    f"CREATE TEMP TABLE {ENTITY_ROWS} (row_id bigint PRIMARY KEY, entity_id text NOT NULL, "
                    "at_us bigint NOT NULL) ON COMMIT DROP"
                )
            )
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                ENTITY_ROWS,
                records=[(i, entity_id, at_us) for i, (entity_id, at_us) in enumerate(entity_rows)],
                columns=["row_id", "entity_id", "at_us"],
            )
            await connection.execute(text(f"ANALYZE {ENTITY_ROWS}"))
            return
        await connection.execute(text(f"DROP TABLE IF EXISTS temp.{ENTITY_ROWS}"))
        await connection.execute(
            text(
                f"CREATE TEMP TABLE {ENTITY_ROWS} (row_id INTEGER PRIMARY KEY, entity_id TEXT, at_us INTEGER)"
            )
        )
        await connection.execute(
            text(
                f"INSERT INTO {ENTITY_ROWS} (row_id, entity_id, at_us) VALUES (:row_id, :entity_id, :at_us)"
            ),
            [{"row_id": i, "entity_id": e, "at_us": t} for i, (e, t) in enumerate(entity_rows)],
        )

    async def online_copy_parts(self, project: str, fields: Sequence[str], window: Window) -> int:
        """One query: SQL has no hash function shared by SQLite and PostgreSQL to split entities by."""
        return 1

    async def latest_for_online(
        self,
        project: str,
        ttl_by_field: dict[str, int],
        window: Window,
        now_us: int,
        part: tuple[int, int] = (0, 1),
    ) -> list[EntityValues]:
        if part != (0, 1):
            raise ValueError("the SQL offline store copies in one part")
        parameters: dict[str, Any] = {
            "project": project,
            "low": window.low,
            "high": window.high,
            "now": now_us,
        }
        cases = []
        for i, (field, ttl_us) in enumerate(ttl_by_field.items()):
            parameters[f"f{i}"], parameters[f"t{i}"] = field, ttl_us
            cases.append(f"WHEN :f{i} THEN CAST(:t{i} AS BIGINT)")
        if self.is_postgres:
            payload = "'\"' || lpad(event_us::text, 16, '0') || '\",' || value"
            grouped = f"json_object_agg(feature, {payload})::text"
        else:
            payload = "'\"' || printf('%016d', event_us) || '\",' || value"
            grouped = f"json_group_object(feature, {payload})"
        query = text(
            f"SELECT entity_id, max(event_us + ttl), count(*), {grouped} FROM ("
            "SELECT feature, entity_id, event_us, value, "
            f"CASE feature {' '.join(cases)} END AS ttl, "
            "ROW_NUMBER() OVER (PARTITION BY feature, entity_id ORDER BY event_us DESC) AS rank "
            "FROM features_offline_values WHERE project_id = :project AND feature IN :fields "
            f"AND {window.condition(':low', ':high')}"
            ") latest WHERE rank = 1 AND event_us + ttl >= :now GROUP BY entity_id"
        ).bindparams(bindparam("fields", expanding=True))
        parameters["fields"] = list(ttl_by_field)
        async with self.database.engine.connect() as connection:
            result = await connection.execute(query, parameters)
            return list(map(EntityValues._make, result.tuples()))

    async def ping(self) -> None:
        await self.database.ping()

    async def close(self) -> None:
        """The database belongs to whoever created it."""
