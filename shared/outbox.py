"""The transactional outbox: events are written beside the state they announce, then published.

A service that changes state and wants the world to hear of it adds the events to the outbox *in the
same transaction* (`enqueue`). Nothing is published inside the request or handler; the process's
relay publishes committed outbox rows in order, with `acks=all`, marks them sent and retries with
backoff while the broker is away. A crash anywhere loses nothing: uncommitted state has no events,
committed state has its events in the table until a relay publishes them.

A crash between publishing and marking publishes a row again after recovery, under the same
`event_id`; consumers deduplicate by `event_id` (`process_once`), so the effect is exactly once.

One relay publishes at a time across every process sharing the database (a lease), so events of
one partition key leave in the order they were committed. A relay wakes at once when its own process
commits outbox rows, and polls for rows of other processes (`AIETL_OUTBOX_POLL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from aietl.shared import metrics
from aietl.shared.bus import OutgoingRecord, describe_error, publish_records, record_of
from aietl.shared.db import Base, Database
from aietl.shared.events import Event
from aietl.shared.events.base import utc_now
from aietl.shared.lease import Leases

log = structlog.get_logger(__name__)
LEASE = "outbox-relay"
BATCH = 500
PURGE_EVERY_SECONDS = 60.0


class OutboxRow(Base):
    """One event waiting to be published (`sent_at` unset) or published (kept a while, then purged)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unsent", "id", sqlite_where="sent_at IS NULL", postgresql_where="sent_at IS NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(1024))
    value: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    event_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0)


class Outbox:
    """Enqueue events in a transaction; the relay of this process is woken when it commits."""

    def __init__(self) -> None:
        self._committed = asyncio.Event()

    def enqueue(self, session: AsyncSession, events: Sequence[Event], *, topic: str | None = None) -> None:
        """Add `events` to the outbox within `session`'s transaction (published once it commits)."""
        for item in events:
            record = record_of(item, topic=topic)
            session.add(
                OutboxRow(
                    topic=record.topic,
                    key=record.key.decode() if record.key is not None else None,
                    value=record.value.decode(),
                    headers=record.headers,
                    event_id=str(item.event_id),
                )
            )
        if events:
            event.listen(session.sync_session, "after_commit", self._wake, once=True)

    def _wake(self, _session: Any) -> None:
        self._committed.set()

    async def wait_for_commit(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed.wait(), timeout)
        self._committed.clear()


class Relay:
    """Publishes committed outbox rows; one active relay at a time across processes (the lease)."""

    def __init__(
        self,
        database: Database,
        broker: KafkaBroker,
        outbox: Outbox,
        *,
        poll_seconds: float = 0.5,
        lease_seconds: float = 10.0,
        retain: timedelta = timedelta(hours=1),
    ) -> None:
        self.database, self.broker, self.outbox = database, broker, outbox
        self.poll_seconds = poll_seconds
        self.retain = retain
        holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.leases = Leases(database, holder, utc_now, lease_seconds)
        self._backoff = 0.0
        self._next_purge = 0.0

    async def run(self) -> None:
        """Until cancelled: publish what is pending whenever this process commits or a poll comes round."""
        try:
            while True:
                try:
                    if await self.leases.acquire(LEASE):
                        await self.drain()
                    self._backoff = 0.0
                except Exception as error:  # the broker or the database is away: keep the rows, retry
                    self._backoff = min(max(self._backoff * 2, 0.1), 30.0)
                    metrics.OUTBOX_PUBLISH_FAILURES.inc()
                    log.warning(
                        "outbox relay cannot publish, retrying",
                        retry_in_seconds=self._backoff,
                        error=describe_error(error),
                    )
                    await asyncio.sleep(self._backoff)
                    continue
                await self.outbox.wait_for_commit(self.poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self.leases.release(LEASE)

    async def drain(self) -> int:
        """Publish every unsent row, oldest first, in batches, while this relay holds the lease."""
        sent = 0
        while True:
            async with self.database.sessions() as session:
                query = select(OutboxRow).where(OutboxRow.sent_at.is_(None)).order_by(OutboxRow.id)
                rows = (await session.scalars(query.limit(BATCH))).all()
            metrics.OUTBOX_PENDING.set(len(rows))
            if not rows:
                break
            ids = [row.id for row in rows]
            try:
                await publish_records(self.broker, [_record(row) for row in rows])
            except Exception:
                async with self.database.transaction() as session:
                    await session.execute(
                        update(OutboxRow).where(OutboxRow.id.in_(ids)).values(attempts=OutboxRow.attempts + 1)
                    )
                raise
            async with self.database.transaction() as session:
                await session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(ids)).values(sent_at=utc_now())
                )
            metrics.OUTBOX_PUBLISHED.inc(len(rows))
            sent += len(rows)
            if len(rows) < BATCH or not await self.leases.acquire(LEASE):
                break
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY_SECONDS
            async with self.database.transaction() as session:
                await session.execute(delete(OutboxRow).where(OutboxRow.sent_at < utc_now() - self.retain))
        return sent


def _record(row: OutboxRow) -> OutgoingRecord:
    return OutgoingRecord(row.topic, row.key.encode() if row.key else None, row.value.encode(), row.headers)
