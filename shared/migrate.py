"""Schema migrations for every service, on SQLite and PostgreSQL alike (`aietl migrate`)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

SHARED_DIR = Path(__file__).resolve().parent
SERVICES_DIR = SHARED_DIR.parent / "services"
SERVICES_WITH_TABLES = ("gateway", "drift", "features", "templates", "predict", "vector_sink", "ops")


SHARED_TABLE_MODULES = ("aietl.shared.db", "aietl.shared.outbox", "aietl.shared.lease")


def import_table_modules() -> None:
    """Register every table on the shared metadata (autogenerate compares against it)."""
    for module in SHARED_TABLE_MODULES:
        importlib.import_module(module)
    for service in SERVICES_WITH_TABLES:
        if (SERVICES_DIR / service / "tables.py").exists():
            importlib.import_module(f"aietl.services.{service}.tables")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SHARED_DIR / "migrations"))
    locations = [SHARED_DIR / "migrations" / "versions"] + [
        SERVICES_DIR / service / "migrations"
        for service in SERVICES_WITH_TABLES
        if (SERVICES_DIR / service / "migrations").is_dir()
    ]
    config.set_main_option("version_locations", " ".join(str(path) for path in locations))
    config.set_main_option("path_separator", "space")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str) -> None:
    """Alembic's env runs its own event loop, so from async code it runs in a thread."""
    await asyncio.to_thread(upgrade, database_url)
