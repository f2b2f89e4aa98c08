"""Leases on SQLite and PostgreSQL: one holder at a time, and a held lease costs no write per use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from aietl.shared.db import Database
from aietl.shared.lease import Leases
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, migrated: Settings
) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'lease.db'}"
        await upgrade_async(url)
    else:
        url = migrated.resolved_database_url
    database = Database(url)
    yield database
    await database.dispose()


def statements_of(database: Database) -> list[str]:
    """Every SQL statement `database` runs from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_one_holder_until_the_lease_expires_or_is_released(database: Database, request: Any) -> None:
    clock = Clock()
    name = f"lease-{request.node.callspec.id}-{id(clock):x}"
    first, second = Leases(database, "first", clock, 10), Leases(database, "second", clock, 10)
    assert await first.acquire(name)
    assert not await second.acquire(name)
    clock.advance(9)
    assert not await second.acquire(name), "taken before it expired"
    clock.advance(2)  # expired: the first holder stopped renewing
    assert await second.acquire(name)
    assert not await first.acquire(name), "the first holder's memory of the lease outlived it"
    await second.release(name)
    assert await first.acquire(name)
    await first.release(name)


async def test_a_held_lease_is_confirmed_without_a_write_until_half_its_life(database: Database) -> None:
    clock = Clock()
    name = f"relay-{id(clock):x}"
    leases = Leases(database, "relay", clock, 10)
    statements = statements_of(database)
    assert await leases.acquire(name)
    written = len(statements)
    assert any("INSERT INTO leases" in statement for statement in statements)
    for _ in range(20):
        clock.advance(0.2)
        assert await leases.acquire(name)
    assert len(statements) == written, statements[written:]
    clock.advance(1.5)  # 5.5 s of 10 gone: renewed in the database, so the lease stays ours
    assert await leases.acquire(name)
    assert len(statements) > written
    clock.advance(9)
    assert not await Leases(database, "other", clock, 10).acquire(name), "the renewal did not reach the row"
    await leases.release(name)
