"""Leases in the SQL store: at most one holder of a named job at a time, across processes and replicas.

A row per lease name says who holds it until when. Taking it is one conditional UPDATE (free, expired,
or already ours), else one INSERT for a name never taken; both are atomic on SQLite and PostgreSQL,
so no advisory locks and no clock on the database side are needed. A holder that dies stops renewing
and its lease expires after `ttl`; a holder that outlives its lease learns it at the next renewal.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, Database
from shared.events.base import utc_now


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]


async def acquire(database: Database, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew `name` for `holder` until now + `ttl`; False when someone else holds it."""
    now = utc_now()
    async with database.transaction() as session:
        taken = await session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return True
    try:
        async with database.transaction() as session:
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
    except IntegrityError:
        return False  # the row exists and is someone else's
    return True


async def release(database: Database, name: str, holder: str) -> None:
    """Give the lease up at once (on a clean stop) instead of letting it expire."""
    async with database.transaction() as session:
        await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
