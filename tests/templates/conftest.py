"""A second platform process for templates tests: same metadata database as the session's, and a
`postgres_warehouse` connection (the specification's control table example writes to a system of
that name) to the tests' warehouse database (`warehouse_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aietl.services.gateway.app import create_app
from aietl.services.runtime import Runtime
from aietl.shared.settings import Settings

WAREHOUSE = "postgres_warehouse"


@pytest.fixture(scope="session")
async def warehouse_engine(warehouse_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(warehouse_url)
    yield engine
    await engine.dispose()


async def warehouse_sql(engine: AsyncEngine, statement: str) -> list[tuple[Any, ...]]:
    async with engine.begin() as connection:
        result = await connection.exec_driver_sql(statement)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


@pytest.fixture(scope="session")
async def warehouse_runtime(
    migrated: Settings, warehouse_url: str, runtime: Runtime
) -> AsyncIterator[Runtime]:
    """Gateway routes of a process configured with the warehouse connection (no workers: the
    session's runtime consumes)."""
    settings = migrated.model_copy(update={"templates_connections": {WAREHOUSE: SecretStr(warehouse_url)}})
    process = Runtime(settings, client_id="aietl-tests-warehouse")
    await process.broker.connect()
    yield process
    await process.broker.stop()
    await process.close()


@pytest.fixture(scope="session")
async def warehouse_client(warehouse_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(warehouse_runtime, owns_runtime=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
        yield http
