"""Every service's migrations apply on SQLite and on PostgreSQL, and create the same tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from shared.db import Base, Database
from shared.migrate import import_table_modules, upgrade_async


async def _tables(url: str) -> set[str]:
    database = Database(url)
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await database.dispose()
    return names


async def test_migrations_on_sqlite_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await upgrade_async(url)
    await upgrade_async(url)  # a second run is a no-op
    import_table_modules()
    assert set(Base.metadata.tables) <= await _tables(url)


async def test_migrations_on_postgres_match_the_models(migrated) -> None:
    import_table_modules()
    tables = await _tables(migrated.resolved_database_url)
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
