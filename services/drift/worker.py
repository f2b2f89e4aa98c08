"""Drift worker: `schema.observed` in, `drift.detected` out, exactly once per observation.

It consumes in batches: one transaction records a whole batch (baselines, detections, audit and
the exactly-once markers, one executemany `INSERT` per table), and the outputs are then published
in order with their acknowledgements awaited together. Per-event transactions would cap the
worker at the round-trip rate of the database and the broker.
Because a batch bypasses the bus's per-message middleware, this module does what it does for
single messages: validation, dead letters with the reason, retries, metrics.

- Each record is validated first: a malformed event or a schema that cannot be understood goes
  to `schema.observed.dlq` at once, the rest of the batch goes on.
- Events already processed (redelivery) are not processed again: their stored output is
  published again (same `event_id`, consumers deduplicate).
- If the batch transaction fails (e.g. a concurrent writer), each event is retried on its own
  (`process_once`) with backoff; an event that still fails is dead-lettered.
- Offsets are committed after the handler returns (at-least-once); a crash replays the batch,
  and the markers make the replay harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.drift import service, store
from services.drift.domain import Column, InvalidSchemaError, columns_of
from services.runtime import Runtime
from shared import metrics
from shared.bus import PayloadTooLarge, ServiceRouter, dead_letter, describe_error, publish_events
from shared.db import ProcessedEvent, process_once
from shared.events import DriftDetected, SchemaObserved, Topic
from shared.events.base import utc_now

GROUP = "drift"
ACTOR = "worker:drift"
MAX_BATCH = 500
BATCH_WAIT_MS = 10  # take what has arrived: a busy topic fills batches anyway, a quiet one is not delayed
log = structlog.get_logger(__name__)


async def process_batch(
    runtime: Runtime, events: Sequence[SchemaObserved], parsed: Sequence[list[Column]] | None = None
) -> list[DriftDetected]:
    """Record every event once in one transaction; return what to publish (new and stored outputs).

    `parsed` are the events' columns when validation already parsed them."""
    ids = [str(event.event_id) for event in events]
    async with runtime.database.transaction() as session:
        rows = await session.execute(
            select(ProcessedEvent.event_id, ProcessedEvent.result).where(
                ProcessedEvent.consumer == GROUP, ProcessedEvent.event_id.in_(ids)
            )
        )
        done = dict(rows.tuples().all())
        fresh: dict[str, int] = {}  # event id -> its first place in the batch (a duplicate counts once)
        for index, event_id in enumerate(ids):
            if event_id not in done:
                fresh.setdefault(event_id, index)
        columns = [parsed[index] for index in fresh.values()] if parsed is not None else None
        batch = [events[index] for index in fresh.values()]
        outcomes = await service.observe_many(session, batch, ACTOR, columns) if batch else []
        produced = dict(zip(fresh, (outcome.output() for outcome in outcomes), strict=True))
        processed_at = utc_now()  # the batch commits as one
        markers = [
            {
                "consumer": GROUP,
                "event_id": event_id,
                "processed_at": processed_at,
                "result": output.model_dump(mode="json") if output else None,
            }
            for event_id, output in produced.items()
        ]
        await store.insert_rows(session, ProcessedEvent, markers)
    for outcome in outcomes:
        service.record_metrics(outcome)
    for event_id, result in done.items():
        produced[event_id] = None if result is None else DriftDetected.model_validate(result)
    return [output for event_id in dict.fromkeys(ids) if (output := produced[event_id]) is not None]


async def process_one(runtime: Runtime, event: SchemaObserved) -> DriftDetected | None:
    """The fallback: one event, one transaction."""
    outcome: service.Outcome | None = None

    async def work(session: AsyncSession) -> DriftDetected | None:
        nonlocal outcome
        outcome = await service.observe(session, event, ACTOR)
        return outcome.output()

    output = await process_once(runtime.database, GROUP, event.event_id, work, DriftDetected)
    if outcome is not None:
        service.record_metrics(outcome)
    return output


class DriftConsumer:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.labels = {"topic": Topic.SCHEMA_OBSERVED, "group": GROUP}

    def parse(self, record: Any) -> tuple[SchemaObserved, list[Column]]:
        """The event and its parsed columns; raises for input that can never be processed."""
        body = record.value or b""
        if len(body) > self.settings.kafka_max_message_bytes:
            raise PayloadTooLarge(
                f"payload of {len(body)} bytes exceeds {self.settings.kafka_max_message_bytes}"
            )
        event = SchemaObserved.model_validate_json(body)
        return event, columns_of(event.columns, event.dialect)  # InvalidSchemaError names the field

    async def dead_letter(self, record: Any, error: Exception, attempts: int = 1) -> None:
        metrics.EVENTS_FAILED.labels(**self.labels).inc()
        await dead_letter(
            self.runtime.broker, self.settings, record, error, attempts=attempts, group_id=GROUP
        )

    async def handle(self, records: Sequence[Any]) -> None:
        started = time.perf_counter()
        metrics.EVENTS_CONSUMED.labels(**self.labels).inc(len(records))
        valid: list[tuple[Any, SchemaObserved]] = []
        parsed: list[list[Column]] = []
        for record in records:
            try:
                event, columns = self.parse(record)
            except (ValidationError, InvalidSchemaError, ValueError) as error:
                await self.dead_letter(record, error)
            else:
                valid.append((record, event))
                parsed.append(columns)
        try:
            outputs = await process_batch(self.runtime, [event for _, event in valid], parsed)
        except Exception as error:
            log.warning(
                "batch failed, handling its events one by one", size=len(valid), error=describe_error(error)
            )
            outputs = await self.one_by_one(valid)
        await publish_events(self.runtime.broker, outputs)
        metrics.HANDLER_SECONDS.labels(**self.labels).observe(time.perf_counter() - started)

    async def one_by_one(self, valid: Sequence[tuple[Any, SchemaObserved]]) -> list[DriftDetected]:
        outputs = []
        for record, event in valid:
            for attempt in range(1, self.settings.handler_max_attempts + 1):
                try:
                    output = await process_one(self.runtime, event)
                except Exception as error:
                    if attempt == self.settings.handler_max_attempts:
                        await self.dead_letter(record, error, attempt)
                        break
                    await asyncio.sleep(self.settings.handler_retry_backoff_seconds * 2 ** (attempt - 1))
                else:
                    if output is not None:
                        outputs.append(output)
                    break
        return outputs


def create_router(runtime: Runtime) -> ServiceRouter:
    """The drift subscriber consumes batches, so it is registered on the broker itself: the
    service router's per-message middleware does not apply to batches (this module does its job).

    The objects made at start-up (sqlglot dialects, pydantic and SQLAlchemy metadata) live as long
    as the process: frozen, the collector stops walking them on every full pass, which was a third
    of the worker's CPU time under load."""
    consumer = DriftConsumer(runtime)
    settings = runtime.settings

    @runtime.broker.subscriber(
        Topic.SCHEMA_OBSERVED,
        group_id=GROUP,
        batch=True,
        max_records=MAX_BATCH,
        batch_timeout_ms=BATCH_WAIT_MS,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        decoder=_raw,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{Topic.SCHEMA_OBSERVED}:{GROUP}",
    )
    async def on_schema_observed(values: list[bytes], message: KafkaMessage) -> None:
        await consumer.handle(message.raw_message)

    return ServiceRouter(runtime.broker, settings, GROUP)


async def _raw(message: Any) -> Any:
    """Keep the bodies as bytes: each record is validated (and dead-lettered) on its own."""
    return message.body
