"""Leases in the metadata database: one holder per name until it releases or stops renewing.

Used wherever one replica of many must act alone: the outbox relay, the templates scheduler, one
run per pipeline at a time. A lease is one row of `leases`. Taking it is a single upsert that only
overwrites an expired row (or the holder's own), so two replicas racing for a name cannot both win: PostgreSQL
serialises the conflicting inserts on the primary key and re-checks the condition on the committed
row; SQLite serialises writers. The holder renews the lease while it works; if its process dies,
the lease expires and someone else may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import String, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from aietl.shared.db import Base, Database

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


class Lease(Base):
    """A named lease: whoever holds an unexpired row may act. Works alike on SQLite and PostgreSQL."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(400), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class LeaseHeld(RuntimeError):
    """Someone else holds the lease."""


class Leases:
    def __init__(self, database: Database, holder: str, clock: Clock, ttl_seconds: float) -> None:
        self.database = database
        self.holder = holder
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_seconds)
        self._held_until: dict[str, datetime] = {}

    async def acquire(self, name: str) -> bool:
        """Take `name` if it is free, expired or already ours.

        A lease of ours with more than half its lifetime left is ours without asking the database
        (nobody may take an unexpired lease): the outbox relay asks before every drain, and an
        upsert per committed event was a write transaction per event on SQLite's single writer."""
        now = self.clock()
        held_until = self._held_until.get(name)
        if held_until is not None and now < held_until - self.ttl / 2:
            return True
        dialect = postgresql if self.database.engine.dialect.name == "postgresql" else sqlite
        async with self.database.transaction() as session:
            statement = dialect.insert(Lease).values(
                name=name, holder=self.holder, expires_at=now + self.ttl, acquired_at=now
            )
            statement = statement.on_conflict_do_update(
                index_elements=[Lease.name],
                set_={
                    "holder": statement.excluded.holder,
                    "expires_at": statement.excluded.expires_at,
                    "acquired_at": statement.excluded.acquired_at,
                },
                where=(Lease.expires_at <= now) | (Lease.holder == self.holder),
            ).returning(Lease.name)
            taken = (await session.execute(statement)).first() is not None
        if taken:
            self._held_until[name] = now + self.ttl
        else:
            self._held_until.pop(name, None)
        return taken

    async def renew(self, name: str) -> bool:
        """Extend our lease; False if it expired and someone else took it."""
        expires_at = self.clock() + self.ttl
        async with self.database.transaction() as session:
            result = await session.execute(
                update(Lease)
                .where(Lease.name == name, Lease.holder == self.holder)
                .values(expires_at=expires_at)
            )
            renewed = bool(result.rowcount)  # type: ignore[attr-defined]
        if renewed:
            self._held_until[name] = expires_at
        else:
            self._held_until.pop(name, None)
        return renewed

    async def release(self, name: str) -> None:
        self._held_until.pop(name, None)
        async with self.database.transaction() as session:
            await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == self.holder))

    @contextlib.asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        """Hold `name` for the block, renewing it at a third of its lifetime; LeaseHeld if taken."""
        if not await self.acquire(name):
            raise LeaseHeld(name)
        renewer = asyncio.create_task(self._keep(name))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self.release(name)

    async def _keep(self, name: str) -> None:
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            try:
                if not await self.renew(name):
                    log.warning("lease lost while held", lease=name, holder=self.holder)
                    return
            except Exception as error:  # a failed renewal is retried next period; expiry is the backstop
                log.warning("lease renewal failed", lease=name, error=str(error))
