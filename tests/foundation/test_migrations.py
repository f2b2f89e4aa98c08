"""Every service's migrations apply on SQLite and on PostgreSQL, and create the same tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from aietl.shared.db import Base, Database
from aietl.shared.migrate import alembic_config, import_table_modules, upgrade_async

ROOT = Path(__file__).resolve().parents[2]


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


def _script_directory(config: Config) -> ScriptDirectory:
    return ScriptDirectory.from_config(config)


def test_one_head_so_that_alembic_upgrade_head_works() -> None:
    """A migration that descends from its service's old head instead of the current one makes a
    second head, and the specification's `alembic upgrade head` then refuses to run."""
    heads = _script_directory(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"more than one migration head: {heads}; descend from the current head"


def test_alembic_ini_lists_every_service_migration_folder() -> None:
    from_ini = Config(str(ROOT / "alembic.ini"))
    ini_locations = from_ini.get_main_option("version_locations")
    app_locations = alembic_config("sqlite://").get_main_option("version_locations")
    assert ini_locations and app_locations
    listed = {Path(p).resolve() for p in ini_locations.split()}
    expected = {Path(p).resolve() for p in app_locations.split()}
    assert listed == expected


def test_alembic_upgrade_head_and_current_from_the_repository_root(tmp_path: Path) -> None:
    """The specification's own commands, run as a user types them, on the embedded default database."""
    env = {**os.environ, "AIETL_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    alembic = str(Path(sys.executable).parent / "alembic")
    upgraded = subprocess.run([alembic, "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "data" / "aietl.db").exists()
    current = subprocess.run([alembic, "current"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert current.returncode == 0, current.stderr
    head = _script_directory(alembic_config("sqlite://")).get_current_head()
    assert current.stdout.split()[0] == head
