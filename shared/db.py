"""SQL metadata store: one async engine for SQLite (embedded) and PostgreSQL (production).

Also home of the exactly-once-effect helper: a handler's writes and the record of the event it
processed commit in one transaction, so a redelivered event changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, MetaData, String, TypeDecorator, event, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from aietl.shared.events.base import utc_now

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Out = TypeVar("Out", bound=BaseModel)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values; they are UTC by contract)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) value")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON}


class ProcessedEvent(Base):
    """One row per (consumer, event) handled; the output it produced is kept for redelivery."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utc_now)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Engine and session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: SQL errors (and so dead-letter reasons and logs) never show the values
        # bound to a statement, password hashes among them.
        if self.is_sqlite:
            # Pooled: opening an aiosqlite connection starts a thread and runs the pragmas, which cost
            # more than a small request's own queries (drift `/detect` p50 went ~3x down with it).
            # In-memory databases keep one connection per session (each would be its own database).
            pooling: dict[str, Any] = (
                {"poolclass": NullPool} if ":memory:" in url else {"pool_size": 5, "max_overflow": 10}
            )
            self.engine: AsyncEngine = create_async_engine(url, echo=echo, hide_parameters=True, **pooling)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def process_once(
    database: Database,
    consumer: str,
    event_id: UUID,
    work: Callable[[AsyncSession], Awaitable[Out | None]],
    output_type: type[Out],
) -> Out | None:
    """Run `work` at most once per (consumer, event_id), atomically with its own writes.

    On redelivery the output recorded the first time is returned again (same `event_id`), so the
    caller can republish it and downstream deduplicates: at-least-once delivery, exactly-once effect.
    """
    key = str(event_id)
    try:
        async with database.transaction() as session:
            marker = ProcessedEvent(consumer=consumer, event_id=key)
            session.add(marker)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise _AlreadyProcessed from exc
            output = await work(session)
            marker.result = output.model_dump(mode="json") if output is not None else None
            return output
    except _AlreadyProcessed:
        async with database.sessions() as session:
            stored = await session.scalar(
                select(ProcessedEvent.result).where(
                    ProcessedEvent.consumer == consumer, ProcessedEvent.event_id == key
                )
            )
        return None if stored is None else output_type.model_validate(stored)


_VALUE_ECHOES = (
    # asyncpg refusing a bound value: "invalid input for query argument $1: 99999 (out of range)"
    (re.compile(r"(query argument \$\d+):.*"), r"\1: <value hidden>"),
    # PostgreSQL quoting the value it could not read: 'invalid input syntax for type integer: "x"'
    (re.compile(r':\s*"[^"]*"\s*$', re.MULTILINE), ": <value hidden>"),
    (re.compile(r"'[^']*'"), "'<value hidden>'"),
)


def describe_database_error(error: StatementError) -> str:
    """The error, its driver's class and message and the statement, without any value the driver
    or the database echoed from the parameters (for dead-letter reasons and logs)."""
    original = error.orig
    message = str(original).strip().splitlines()[0] if original is not None and str(original).strip() else ""
    for pattern, replacement in _VALUE_ECHOES:
        message = pattern.sub(replacement, message)
    sqlstate = getattr(original, "sqlstate", None)
    driver = type(original).__name__ + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    return f"{type(error).__name__}: {driver}: {message} [SQL: {error.statement}]"


class _AlreadyProcessed(Exception):
    """The event's marker exists: another delivery of it has committed."""
