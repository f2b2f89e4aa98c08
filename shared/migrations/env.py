"""Alembic environment: one async engine for SQLite and PostgreSQL, one branch per service."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from aietl.shared.db import Base
from aietl.shared.migrate import import_table_modules
from aietl.shared.settings import Settings

if context.config.config_file_name is not None:  # the `alembic` command: log as alembic.ini says
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

import_table_modules()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    """The URL `aietl migrate` passes, else (plain `alembic` from the repository root) the settings'."""
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    settings = Settings()
    settings.ensure_data_dir()
    return settings.resolved_database_url


async def _run_async() -> None:
    engine = create_async_engine(_database_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
