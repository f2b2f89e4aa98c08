"""Drift worker: `schema.observed` in, `drift.detected` out, exactly once per observation.

It consumes in batches (`aietl.shared.bus.BatchConsumer`): one transaction records a whole batch
(baselines, detections, audit and the exactly-once markers, one executemany `INSERT` per table),
and the outputs are then published in order with their acknowledgements awaited together.
Per-event transactions would cap the worker at the round-trip rate of the database and the broker.

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

import json
from collections.abc import Sequence
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.drift import service, store
from aietl.services.runtime import Runtime
from aietl.shared.bus import ServiceRouter, describe_error
from aietl.shared.db import ProcessedEvent, process_once
from aietl.shared.events import DriftDetected, SchemaObserved, Topic
from aietl.shared.events.base import utc_now

log = structlog.get_logger(__name__)
GROUP = "drift"
ACTOR = "worker:drift"
MAX_BATCH = 500
BATCH_WAIT_MS = 10  # take what has arrived: a busy topic fills batches anyway, a quiet one is not delayed


async def process_batch(runtime: Runtime, events: Sequence[SchemaObserved]) -> list[DriftDetected]:
    """Record every event once in one transaction; return what to publish (new and stored outputs)."""
    ids = [str(event.event_id) for event in events]
    async with runtime.database.transaction() as session:
        rows = await session.execute(
            select(ProcessedEvent.event_id, ProcessedEvent.result).where(
                ProcessedEvent.consumer == GROUP, ProcessedEvent.event_id.in_(ids)
            )
        )
        done: dict[str, dict[str, Any] | None] = dict(rows.tuples().all())
        fresh: dict[str, int] = {}  # event id -> its first place in the batch (a duplicate counts once)
        for index, event_id in enumerate(ids):
            if event_id not in done:
                fresh.setdefault(event_id, index)
        batch = [events[index] for index in fresh.values()]
        outcomes = await service.observe_many(session, batch, ACTOR) if batch else []
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


class UnprocessableObservation(ValueError):
    """An observation that can never be processed; the message names its table and the field. Its
    dead letter says `ValidationError`, as every service's contract violations do."""

    dead_letter_type = "ValidationError"


def _table_of(body: bytes) -> str:
    """`connector/table` as far as the body says (best effort: it may be malformed)."""
    try:
        data = json.loads(body)
        return f"{data.get('connector_id', '?')}/{data.get('table_name', '?')}"[:520]
    except (ValueError, AttributeError):
        return "?/?"


def parse(body: bytes) -> SchemaObserved:
    """The event; raises for input that can never be processed (it goes to the dead-letter topic
    with a reason that names the table, and the log says so too). Its columns are parsed with the
    detection, off the event loop: every type is accepted, duplicate names the contract refuses."""
    try:
        return SchemaObserved.model_validate_json(body)
    except ValidationError as error:
        table = _table_of(body)
        reason = f"table {table}: {describe_error(error)}"
        log.warning("schema.observed refused", table=table, reason=reason)
        raise UnprocessableObservation(reason) from None


def create_router(runtime: Runtime) -> ServiceRouter:
    """The drift subscriber consumes batches (`aietl.shared.bus.BatchConsumer`)."""

    async def batch(events: Sequence[SchemaObserved]) -> list[DriftDetected]:
        return await process_batch(runtime, events)

    async def one(event: SchemaObserved) -> list[DriftDetected]:
        output = await process_one(runtime, event)
        return [] if output is None else [output]

    router = ServiceRouter(runtime.broker, runtime.settings, GROUP)
    router.consumes_batches(
        Topic.SCHEMA_OBSERVED, parse=parse, batch=batch, one=one, max_records=MAX_BATCH, wait_ms=BATCH_WAIT_MS
    )
    return router
