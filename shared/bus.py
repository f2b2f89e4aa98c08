"""The Kafka bus: broker factory, topic creation, per-service routers with retries and dead letters.

A worker is a typed FastStream subscriber. Everything reliability needs is declared here once:
bounded in-process retries, then the dead-letter topic with the reason and the original bytes,
offsets committed only after the event is handled or dead-lettered (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from shared import metrics
from shared.db import describe_database_error
from shared.events import CONTRACTS, DeadLetter, Event, Topic
from shared.settings import Settings

log = structlog.get_logger(__name__)
Parsed = TypeVar("Parsed")
Result = TypeVar("Result")

TOPIC_CREATE_ERRORS_OK = {0, 36}  # no error, topic already exists
UNKNOWN_PROJECT = "unknown"
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def create_broker(settings: Settings, *, client_id: str = "aietl") -> KafkaBroker:
    """A broker that works on tansu and on Apache Kafka: no idempotent producer (tansu refuses it)."""
    return KafkaBroker(
        settings.resolved_kafka_servers,
        client_id=client_id,
        enable_idempotence=False,
        acks="all",
        max_request_size=settings.kafka_max_message_bytes + 65_536,
        logger=None,
    )


def all_topics() -> list[str]:
    topics = list(CONTRACTS)
    return topics + [Topic.dlq(topic) for topic in topics]


async def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Create the platform's topics with the configured partitions; existing topics are left alone."""
    wanted = [
        NewTopic(name, settings.kafka_partitions, settings.kafka_replication_factor)
        for name in (topics if topics is not None else all_topics())
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.resolved_kafka_servers, client_id="aietl-admin")
    await admin.start()
    try:
        response = await admin.create_topics(wanted)
        for name, code, message in response.topic_errors:
            if code not in TOPIC_CREATE_ERRORS_OK:
                raise KafkaError(f"cannot create topic {name}: {message} (code {code})")
    finally:
        await admin.close()


async def publish_event(broker: KafkaBroker, event: Event, *, topic: str | None = None) -> None:
    """Publish a contract as JSON, keyed so that events of one entity stay in order."""
    await publish_events(broker, [event], topic=topic)


async def publish_events(broker: KafkaBroker, events: Sequence[Event], *, topic: str | None = None) -> None:
    """Publish many events: enqueue them all in order, then wait for every acknowledgement.

    Concurrent single publishes each wake up whenever one of the producer's batches drains, which
    costs three times the CPU of the publishing itself at hundreds of events.
    """
    confirmations = []
    for event in events:
        target = topic or event.topic
        confirmations.append(
            await broker.publish(
                event.model_dump_json().encode(),
                target,
                key=event.kafka_key(),
                headers={
                    "content-type": "application/json",
                    "aietl-schema-version": str(event.schema_version),
                },
                no_confirm=True,
            )
        )
        metrics.EVENTS_PUBLISHED.labels(topic=target).inc()
    await asyncio.gather(*confirmations)


async def record_consumer_lag(broker: KafkaBroker, every_seconds: float = 15.0) -> None:
    """Keep `aietl_consumer_lag` current for every partition this process consumes, until cancelled.

    The end offset is the high watermark of the last fetch response (no extra request to the
    broker); a partition the broker has reported none for yet is skipped.
    """
    while True:
        for subscriber in broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            for partition in consumer.assignment():
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue
                try:
                    position = await consumer.position(partition)
                except KafkaError:
                    continue  # revoked by a rebalance meanwhile
                metrics.CONSUMER_LAG.labels(
                    topic=partition.topic, partition=str(partition.partition), group=subscriber.group_id or ""
                ).set(max(highwater - position, 0))
        await asyncio.sleep(every_seconds)


def describe_error(error: BaseException) -> str:
    """A reason for humans: validation errors name the field, never echo the input values."""
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        ]
        return "invalid event: " + "; ".join(parts[:20])
    if isinstance(error, StatementError):  # the values bound to the statement stay out
        return describe_database_error(error)[:2_000]
    return f"{type(error).__name__}: {error}"[:2_000]


class _DeadLetterMiddleware(BaseMiddleware):
    """Retry a failing handler a few times; then dead-letter the message and let the consumer go on."""

    broker: KafkaBroker
    settings: Settings
    group_id: str

    async def consume_scope(self, call_next: Callable[..., Any], msg: Any) -> Any:
        record = msg.raw_message
        topic = record.topic
        labels = {"topic": topic, "group": self.group_id}
        metrics.EVENTS_CONSUMED.labels(**labels).inc()
        started = time.perf_counter()
        try:
            check_payload_size(msg.body, self.settings)
            return await call_with_retries(lambda: call_next(msg), self.settings, topic)
        except Exception as error:
            failure = error if isinstance(error, HandlingFailed) else HandlingFailed(error, attempts=0)
            metrics.EVENTS_FAILED.labels(**labels).inc()
            await dead_letter(
                self.broker,
                self.settings,
                record,
                failure.error,
                attempts=failure.attempts,
                group_id=self.group_id,
            )
            return None
        finally:
            metrics.HANDLER_SECONDS.labels(**labels).observe(time.perf_counter() - started)


async def dead_letter(
    broker: KafkaBroker,
    settings: Settings,
    record: Any,
    error: BaseException,
    *,
    attempts: int,
    group_id: str,
) -> None:
    """Publish `record` to `<topic>.dlq` with the reason; the consumer then goes on with the next one."""
    body = record.value or b""
    reason, project_id = describe_error(error), _project_of(body)
    # Base64 grows the value by 4/3: keep what fits the producer's limit, or the letter itself
    # would be refused and the poison redelivered forever.
    room = settings.kafka_max_message_bytes * 3 // 4
    if len(body) > room:
        reason = f"{reason} (original value truncated to its first {room} of {len(body)} bytes)"
        body = body[:room]
    letter = DeadLetter(
        project_id=project_id,
        original_topic=record.topic,
        original_key=record.key.decode(errors="replace") if record.key else None,
        original_partition=record.partition,
        original_offset=record.offset,
        original_value_b64=base64.b64encode(body).decode(),
        consumer_group=group_id,
        error_type=type(error).__name__,
        reason=reason,
        attempts=attempts,
    )
    await publish_event(broker, letter, topic=Topic.dlq(record.topic))
    metrics.EVENTS_DEAD_LETTERED.labels(topic=record.topic, group=group_id).inc()
    log.error("event dead-lettered", topic=record.topic, offset=record.offset, reason=reason)


def _project_of(body: bytes) -> str:
    """Best effort: the dead letter belongs to the sender's project when the body says which."""
    try:
        value = json.loads(body).get("project_id")
    except (ValueError, AttributeError):
        return UNKNOWN_PROJECT
    if isinstance(value, str) and PROJECT_ID.fullmatch(value):
        return value
    return UNKNOWN_PROJECT


class PayloadTooLarge(ValueError):
    """The event is larger than the platform accepts; retrying cannot help."""


class PermanentError(Exception):
    """Raised by a handler for input it can never process (retrying cannot help): dead-letter now."""


class HandlingFailed(Exception):
    """A handler failed for good: `error`, after `attempts` attempts."""

    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(describe_error(error))
        self.error, self.attempts = error, attempts


NOT_RETRIED = (ValidationError, PayloadTooLarge, PermanentError)


def check_payload_size(body: bytes, settings: Settings) -> None:
    if len(body) > settings.kafka_max_message_bytes:
        raise PayloadTooLarge(f"payload of {len(body)} bytes exceeds {settings.kafka_max_message_bytes}")


async def call_with_retries(call: Callable[[], Awaitable[Result]], settings: Settings, topic: str) -> Result:
    """`call()`, retried with exponential backoff while its error may pass; raises `HandlingFailed`
    once it cannot (input that can never be processed, `NOT_RETRIED`, is not retried)."""
    attempt = 1
    while True:
        try:
            return await call()
        except Exception as error:
            if isinstance(error, NOT_RETRIED) or attempt >= settings.handler_max_attempts:
                raise HandlingFailed(error, attempt) from error
            log.warning("handler failed, retrying", topic=topic, attempt=attempt, error=describe_error(error))
            await asyncio.sleep(settings.handler_retry_backoff_seconds * 2 ** (attempt - 1))
            attempt += 1


class BatchConsumer(Generic[Parsed]):
    """Consume a topic in batches: per-record validation and dead letters, one call for the batch.

    A batch bypasses the per-message middleware, so this does its job for batches: a record that
    `parse` refuses goes to the dead-letter topic at once and the rest of the batch goes on; if the
    batch call fails, each record is handled on its own (`one`) with the retries single messages
    get (`call_with_retries`) and dead-lettered when it keeps failing. Offsets are committed after
    `handle` returns (at-least-once), so `batch` and `one` must have exactly-once effect (markers or
    idempotent writes). Both return the events to publish, which go out in order once the batch is done.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        settings: Settings,
        group_id: str,
        topic: str,
        *,
        parse: Callable[[bytes], Parsed],
        batch: Callable[[Sequence[Parsed]], Awaitable[Sequence[Event]]],
        one: Callable[[Parsed], Awaitable[Sequence[Event]]],
    ) -> None:
        self.broker, self.settings, self.group_id, self.topic = broker, settings, group_id, topic
        self.parse, self.batch, self.one = parse, batch, one
        self.labels = {"topic": topic, "group": group_id}

    def subscribe(self, *, max_records: int, wait_ms: int) -> None:
        """Register on the broker itself (a router's middleware would wrap batches whole)."""

        async def on_batch(values: list[bytes], message: KafkaMessage) -> None:
            await self.handle(message.raw_message)

        self.broker.subscriber(
            self.topic,
            group_id=self.group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=wait_ms,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            decoder=_raw_bodies,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{self.topic}:{self.group_id}",
            # The handler sees raw bytes; `services.contracts` documents the topic's event model.
            include_in_schema=False,
        )(on_batch)

    async def handle(self, records: Sequence[Any]) -> None:
        started = time.perf_counter()
        metrics.EVENTS_CONSUMED.labels(**self.labels).inc(len(records))
        valid: list[tuple[Any, Parsed]] = []
        for record in records:
            body = record.value or b""
            try:
                check_payload_size(body, self.settings)
                valid.append((record, self.parse(body)))
            except Exception as error:  # parsing is pure: what fails it will always fail it
                await self._dead_letter(record, error, attempts=1)
        try:
            outputs = list(await self.batch([item for _, item in valid])) if valid else []
        except Exception as error:
            log.warning(
                "batch failed, handling its events one by one", size=len(valid), error=describe_error(error)
            )
            outputs = await self._one_by_one(valid)
        await publish_events(self.broker, outputs)
        metrics.HANDLER_SECONDS.labels(**self.labels).observe(time.perf_counter() - started)

    async def _one_by_one(self, valid: Sequence[tuple[Any, Parsed]]) -> list[Event]:
        outputs: list[Event] = []
        for record, item in valid:
            try:
                outputs.extend(
                    await call_with_retries(lambda item=item: self.one(item), self.settings, self.topic)
                )
            except HandlingFailed as failed:
                await self._dead_letter(record, failed.error, attempts=failed.attempts)
        return outputs

    async def _dead_letter(self, record: Any, error: BaseException, *, attempts: int) -> None:
        metrics.EVENTS_FAILED.labels(**self.labels).inc()
        await dead_letter(
            self.broker, self.settings, record, error, attempts=attempts, group_id=self.group_id
        )


async def _raw_bodies(message: Any) -> Any:
    """Keep the bodies as bytes: each record is validated (and dead-lettered) on its own."""
    return message.body


class ServiceRouter(KafkaRouter):
    """One router per service: its consumer group, tansu-safe consumer options, retries and DLQ."""

    def __init__(self, broker: KafkaBroker, settings: Settings, group_id: str) -> None:
        middleware = type(
            f"DeadLetter_{group_id}",
            (_DeadLetterMiddleware,),
            {"broker": broker, "settings": settings, "group_id": group_id},
        )
        super().__init__(middlewares=[middleware])
        self.settings = settings
        self.group_id = group_id

    def consumes(self, topic: str, **overrides: Any) -> Callable[..., Any]:
        """`@router.consumes(Topic.X)`: subscribe this service's group with the platform's defaults."""
        options: dict[str, Any] = {
            "group_id": self.group_id,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.settings.kafka_session_timeout_ms,
            "heartbeat_interval_ms": self.settings.kafka_heartbeat_interval_ms,
            "fetch_max_wait_ms": self.settings.kafka_fetch_max_wait_ms,
            "ack_policy": AckPolicy.NACK_ON_ERROR,
        }
        options.update(overrides)
        return self.subscriber(topic, **options)
