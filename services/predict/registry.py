"""The model registry in the SQL store: one row per training attempt, the model bytes of ready ones.

Only the platform writes these rows (the predict worker's trainer); the bytes are arrays and JSON
(`FailureModel.to_bytes`), so even a forged row could not run code when a process loads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from aietl.services.predict.tables import ModelVersion
from aietl.shared.db import Database

KEEP_MODELS = 5  # ready versions whose bytes are kept; older ones keep their row and metrics only
ABANDONED_AFTER = timedelta(hours=2)  # a "training" row this old belongs to a process that died


class ModelRegistry:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def latest(self, status: str | None = None) -> ModelVersion | None:
        query = select(ModelVersion).order_by(ModelVersion.id.desc()).limit(1)
        if status is not None:
            query = query.where(ModelVersion.status == status)
        async with self.database.sessions() as session:
            return await session.scalar(query)

    async def latest_ready_id(self) -> int | None:
        async with self.database.sessions() as session:
            return await session.scalar(
                select(ModelVersion.id)
                .where(ModelVersion.status == "ready")
                .order_by(ModelVersion.id.desc())
                .limit(1)
            )

    async def model_bytes(self, version_id: int) -> bytes | None:
        async with self.database.sessions() as session:
            return await session.scalar(select(ModelVersion.model).where(ModelVersion.id == version_id))

    async def versions(self, limit: int) -> list[ModelVersion]:
        async with self.database.sessions() as session:
            rows = await session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(limit))
            return list(rows)

    async def running(self, now: datetime) -> ModelVersion | None:
        """A training started by any process and not abandoned."""
        async with self.database.sessions() as session:
            return await session.scalar(
                select(ModelVersion)
                .where(ModelVersion.status == "training", ModelVersion.started_at > now - ABANDONED_AFTER)
                .order_by(ModelVersion.id.desc())
                .limit(1)
            )

    async def start(self, horizons: list[float], stored_runs: int) -> int:
        async with self.database.transaction() as session:
            version = ModelVersion(
                status="training", started_at=datetime.now(UTC), horizons=horizons, stored_runs=stored_runs
            )
            session.add(version)
            await session.flush()
            return version.id

    async def finish(self, version_id: int, status: str, model: bytes | None = None, **fields: Any) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(
                    status=status,
                    finished_at=datetime.now(UTC),
                    model=model,
                    model_bytes=len(model or b""),
                    **fields,
                )
            )
        if model is not None:
            await self._prune()

    async def _prune(self) -> None:
        """Drop the bytes of all but the latest KEEP_MODELS ready versions (rows and metrics stay)."""
        async with self.database.transaction() as session:
            keep = list(
                await session.scalars(
                    select(ModelVersion.id)
                    .where(ModelVersion.status == "ready")
                    .order_by(ModelVersion.id.desc())
                    .limit(KEEP_MODELS)
                )
            )
            if keep:
                await session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.id < min(keep), ModelVersion.model.is_not(None))
                    .values(model=None)
                )
