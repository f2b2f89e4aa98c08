"""The Kafka bus: broker factory, topic creation, per-service routers with retries and dead letters.

A worker is a typed FastStream subscriber. Everything reliability needs is declared here once:
bounded in-process retries, then the dead-letter topic with the reason and the original bytes,
offsets committed only after the event is handled or dead-lettered (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    KafkaError,
    UnsupportedCodecError,
    for_code,
)
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.transaction import InitProducerIdRequest
from aiokafka.record.memory_records import MemoryRecords
from faststream import AckPolicy, BaseMiddleware
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from aietl.shared import metrics
from aietl.shared.db import describe_database_error
from aietl.shared.events import CONTRACTS, DeadLetter, Event, Topic
from aietl.shared.settings import Settings

log = structlog.get_logger(__name__)
Parsed = TypeVar("Parsed")
Result = TypeVar("Result")

TOPIC_CREATE_ERRORS_OK = {0, 36}  # no error, topic already exists
UNKNOWN_PROJECT = "unknown"
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


SASL_MECHANISMS: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}
# The record batch could not be decompressed or parsed: refetching it fails the same way forever.
UNDECODABLE_ERRORS: tuple[type[Exception], ...] = (UnsupportedCodecError, CorruptRecordException)
PROBE_TIMEOUT_MS = 3_000  # enough for a fetch round trip to a loaded broker


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """TLS and SASL for every Kafka client of the platform, from `KAFKA_SECURITY_PROTOCOL` & co."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        ca_file = settings.kafka_ssl_ca_file
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password
    return SASL_MECHANISMS[settings.kafka_sasl_mechanism](
        str(settings.kafka_sasl_username),
        password.get_secret_value() if password else "",
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Servers and security for an aiokafka client the platform creates itself (admin, probes):
    the same the broker gives its producer and consumers."""
    return {"bootstrap_servers": bootstrap_servers(settings), **parse_security(kafka_security(settings))}


def bootstrap_servers(settings: Settings) -> list[str]:
    """`KAFKA_BOOTSTRAP_SERVERS` as a list: FastStream would pass a comma-separated string on to
    aiokafka as one host."""
    return [server.strip() for server in settings.resolved_kafka_servers.split(",") if server.strip()]


def create_broker(settings: Settings, *, client_id: str = "aietl") -> KafkaBroker:
    """The platform's broker: `acks=all`, the idempotent producer where the broker grants it,
    consumers that move past what they cannot decode, topics only from `ensure_topics`."""
    return _PlatformBroker(
        settings,
        bootstrap_servers(settings),
        client_id=client_id,
        enable_idempotence=False,  # decided on connecting (`_PlatformBroker._connect`)
        acks="all",
        max_request_size=settings.kafka_max_message_bytes + 65_536,
        security=kafka_security(settings),
        allow_auto_create_topics=False,
        # Per-message records at DEBUG (the `faststream` logger is at WARNING or above); the
        # client's errors (a fetch or commit failing) reach the log.
        logger=logging.getLogger("faststream"),
        log_level=logging.DEBUG,
    )


class _PlatformBroker(KafkaBroker):
    """FastStream's broker, deciding on connecting what it can only learn from the broker."""

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    async def _connect(self) -> Any:
        idempotent = self.settings.kafka_idempotent_producer
        supported = idempotent is not False and await idempotence_supported(self.settings)
        if idempotent and not supported:
            raise KafkaError("AIETL_KAFKA_IDEMPOTENT_PRODUCER is set but the broker grants no producer id")
        self._connection_kwargs["enable_idempotence"] = supported if idempotent is None else idempotent
        builder = await super()._connect()
        assert isinstance(builder, partial), "faststream's producer builder is a functools.partial"
        safe = partial(DecodeSafeConsumer, *builder.args, **builder.keywords)
        self.config.broker_config.builder = safe
        return safe

    async def start(self) -> None:
        """Connect, then start every subscriber at once. A subscriber's start waits until its group
        assigns it partitions, which waits on the broker (a rebalance; the session of a member that
        died, 6-11 s on tansu and Kafka): one after another, a restart after a crash took minutes."""
        await self.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.subscribers))
        for publisher in self.publishers:
            await publisher.start()
        self.running = True


async def idempotence_supported(settings: Settings, timeout: float = 15.0) -> bool:
    """Whether the broker grants a producer id (what an idempotent producer asks first): Apache
    Kafka does (a broker just started may ask to retry while it loads a block of ids); tansu
    answers with an error, and an idempotent producer there would never send."""
    client = AIOKafkaClient(**client_options(settings), client_id="aietl-probe")
    deadline = time.monotonic() + timeout
    try:
        await client.bootstrap()
        while True:
            request = InitProducerIdRequest(None, 60_000)
            response = await client.send(client.get_random_node(), request)
            if response.error_code == 0:
                return True
            if not for_code(response.error_code).retriable or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
    except KafkaError:
        return False
    finally:
        await client.close()


@dataclass
class UndecodableRecord(ConsumerRecord[bytes, bytes]):
    """Stands for the record at `offset` of a batch the consumer cannot decode (`reason` says why);
    it carries no key or value, and goes to the dead-letter path like any record that fails.
    Once it is handed out, the partition's position is `resume_at`."""

    reason: str = ""
    resume_at: int = 0


class DecodeSafeConsumer(AIOKafkaConsumer):
    """A consumer that moves past a record batch it cannot decode.

    aiokafka decompresses a fetched batch when its records are taken; a batch it cannot decode (a
    codec library missing, damaged data) raises there on every refetch, and the partition would never
    move again. Here the partition that fails is found, the batch's offsets are read from its header
    (which is never compressed), and each offset comes back as an `UndecodableRecord`: the handler
    path dead-letters it with the reason, and the position moves past it, so the offset commits after
    it as after any poison message.
    """

    _pending: deque[UndecodableRecord] | None = None
    _last_undecodable: TopicPartition | None = None

    async def getone(self, *partitions: TopicPartition) -> Any:
        if taken := self._take_undecodable(partitions, 1):
            return taken[0]
        try:
            return await super().getone(*partitions)
        except Exception as error:
            if not _may_be_undecodable(error):
                raise
            await self._find_undecodable(error, partitions)
            return self._take_undecodable(partitions, 1)[0]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        if not (taken := self._take_undecodable(partitions, max_records)):
            try:
                return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
            except Exception as error:
                if not _may_be_undecodable(error):
                    raise
                await self._find_undecodable(error, partitions)
                taken = self._take_undecodable(partitions, max_records)
        return {TopicPartition(taken[0].topic, taken[0].partition): list(taken)}

    def _take_undecodable(
        self, partitions: Sequence[TopicPartition], limit: int | None
    ) -> list[UndecodableRecord]:
        """The next undecodable records (of one partition), moving its position past each."""
        taken: list[UndecodableRecord] = []
        while self._pending and (limit is None or len(taken) < limit):
            record = self._pending[0]
            partition = TopicPartition(record.topic, record.partition)
            if partition not in self.assignment():  # revoked: its new consumer finds them itself
                self._pending.popleft()
                continue
            if (partitions and partition not in partitions) or (
                taken and taken[0].partition != record.partition
            ):
                break
            self._pending.popleft()
            self.seek(partition, record.resume_at)
            taken.append(record)
        return taken

    async def _find_undecodable(self, error: Exception, partitions: Sequence[TopicPartition]) -> None:
        """Queue an `UndecodableRecord` for each offset of the batch that fails to decode; raise
        `error` again when no partition's next batch fails (it came from elsewhere)."""
        for partition in await self._with_lag(partitions or tuple(self.assignment())):
            position = await self.position(partition)
            try:
                fetched = await super().getmany(partition, timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
            except Exception as failure:
                if not _may_be_undecodable(failure):
                    raise
                end = await self._batch_end(partition, position)
                reason = (
                    f"its record batch (offsets {position}-{end - 1}) cannot be decoded: "
                    + _decoding_error(failure)
                )
                self._pending = deque(
                    UndecodableRecord(
                        topic=partition.topic,
                        partition=partition.partition,
                        offset=offset,
                        timestamp=-1,
                        timestamp_type=0,
                        key=None,
                        value=None,
                        checksum=None,
                        serialized_key_size=-1,
                        serialized_value_size=-1,
                        headers=(),
                        reason=reason,
                        resume_at=offset + 1 if offset + 1 < end else end,
                    )
                    for offset in range(position, end)
                )
                self._last_undecodable = partition
                return
            if fetched:
                self.seek(partition, position)  # a healthy partition: read that record again in turn
        raise error

    async def _with_lag(self, partitions: Sequence[TopicPartition]) -> list[TopicPartition]:
        """The partitions with something left to read, the one that failed last time first."""
        lagging = []
        for partition in partitions:
            highwater = self.highwater(partition)
            if highwater is None or await self.position(partition) < highwater:
                lagging.append(partition)
        return sorted(lagging, key=lambda tp: (tp != self._last_undecodable, tp.topic, tp.partition))

    async def _batch_end(self, partition: TopicPartition, position: int) -> int:
        """The offset after the batch that holds `position`, from the batch's header as the leader
        sends it (fetched again raw: the header is never compressed); `position + 1` if unknown.
        Some brokers (tansu) never serve a batch again from an offset inside it, so all of its
        offsets are dealt with now."""
        client = self._client
        node = client.cluster.leader_for_partition(partition)
        if node is None or node < 0:
            return position + 1
        # Waits up to a second for a first byte (tansu answers an immediate fetch with nothing).
        request = FetchRequest(
            1_000, 1, 1_048_576, 0, [(partition.topic, [(partition.partition, position, 1_048_576)])]
        )
        for _attempt in range(3):
            try:
                response = await client.send(node, request)
            except KafkaError:
                return position + 1
            for _topic, answers in response.topics:
                for _number, error_code, _highwater, *data in answers:
                    records = MemoryRecords(data[-1])
                    if error_code == 0 and records.has_next():
                        return max(position + 1, records.next_batch().next_offset)
        return position + 1


def _decoding_error(error: Exception) -> str:
    return str(error) if isinstance(error, KafkaError) else describe_error(error)  # KafkaError names itself


def _may_be_undecodable(error: Exception) -> bool:
    """Decoding a batch raises the codec's own errors too (cramjam's, zlib's); the client's
    other errors (network, coordinator, a stopped consumer) are not about the records."""
    if isinstance(error, UNDECODABLE_ERRORS):
        return True
    return not isinstance(error, KafkaError | ConsumerStoppedError)


def all_topics() -> list[str]:
    topics = list(CONTRACTS)
    return topics + [Topic.dlq(topic) for topic in topics]


async def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Create the platform's topics as production runs them: the configured partitions, replication
    factor and `min.insync.replicas` (with `acks=all`, a write is acknowledged once that many replicas
    have it). Existing topics are left alone; nothing relies on the broker creating topics itself."""
    config = {"min.insync.replicas": str(settings.resolved_kafka_min_insync_replicas)}
    wanted = [
        NewTopic(name, settings.kafka_partitions, settings.kafka_replication_factor, topic_configs=config)
        for name in (topics if topics is not None else all_topics())
    ]
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="aietl-admin")
    await admin.start()
    try:
        response = await admin.create_topics(wanted)
        for name, code, message in response.topic_errors:
            if code not in TOPIC_CREATE_ERRORS_OK:
                raise KafkaError(f"cannot create topic {name}: {message} (code {code})")
        await _until_visible(admin, [topic.name for topic in wanted])
    finally:
        await admin.close()


async def _until_visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Return once the topics have leaders in the metadata of (very likely) every broker: twice as many
    answers in a row as there are brokers, each from a broker taken at random. A topic just created
    is not in every broker's metadata at once; a consumer that asked such a broker got no partitions
    and waited `metadata.max.age.ms` (5 minutes) to ask again (seen on the three-broker cluster)."""
    brokers = len((await admin.describe_cluster())["brokers"])
    deadline, answers = time.monotonic() + timeout, 0
    while answers < 2 * brokers:
        topics = await admin.describe_topics(names)
        visible = len(topics) == len(names) and all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(partition["leader"] >= 0 for partition in topic["partitions"])
            for topic in topics
        )
        answers = answers + 1 if visible else 0
        if not visible:
            if time.monotonic() > deadline:
                raise KafkaError(f"topics without leaders after {timeout:.0f} s: {names}")
            await asyncio.sleep(0.05)


async def publish_event(broker: KafkaBroker, event: Event, *, topic: str | None = None) -> None:
    """Publish a contract as JSON, keyed so that events of one entity stay in order."""
    await publish_events(broker, [event], topic=topic)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """An event as it goes on the wire: topic, key, JSON value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def record_of(event: Event, *, topic: str | None = None) -> OutgoingRecord:
    """The wire form of a contract: JSON, keyed so that events of one entity stay in order."""
    return OutgoingRecord(
        topic or event.topic,
        event.kafka_key(),
        event.model_dump_json().encode(),
        {"content-type": "application/json", "aietl-schema-version": str(event.schema_version)},
    )


async def publish_events(broker: KafkaBroker, events: Sequence[Event], *, topic: str | None = None) -> None:
    """Publish many events in order and wait for every acknowledgement."""
    await publish_records(broker, [record_of(event, topic=topic) for event in events])


async def publish_records(broker: KafkaBroker, records: Sequence[OutgoingRecord]) -> None:
    """Enqueue every record in order, then wait for every acknowledgement.

    Concurrent single publishes each wake up whenever one of the producer's batches drains, which
    costs three times the CPU of the publishing itself at hundreds of events.
    """
    confirmations = []
    for record in records:
        confirmations.append(
            await broker.publish(
                record.value, record.topic, key=record.key, headers=record.headers, no_confirm=True
            )
        )
        metrics.EVENTS_PUBLISHED.labels(topic=record.topic).inc()
    await asyncio.gather(*confirmations)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """How many records a consumer group has yet to read from one partition."""

    topic: str
    partition: int
    group: str
    lag: int


class ConsumerStalled(RuntimeError):
    """A partition has lag and its consumer's position has not moved for `kafka_stall_seconds`."""


class ConsumerProgress:
    """Consumer lag per partition this process consumes (`aietl_consumer_lag`), and the partitions
    that make no progress while they have lag (`aietl_consumer_stalled`, and `check` for /ready).

    The end offsets come from one ListOffsets request per consumer and sample (the high watermark
    of the last fetch goes stale while a handler hangs: the consumer fetches nothing meanwhile). A
    partition stalls when a handler hangs, or the consume loop has died: its lag would never fall,
    and nothing else says so.
    """

    def __init__(self, broker: KafkaBroker, stall_seconds: float) -> None:
        self.broker = broker
        self.stall_seconds = stall_seconds
        self._last_move: dict[tuple[str, str, int], tuple[int, float]] = {}
        self.stalled: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> lag
        self.lags: list[PartitionLag] = []
        """Every partition's lag at the last sample (the heartbeat reports them)."""

    async def run(self, every_seconds: float | None = None) -> None:
        """Sample until cancelled (by default four times per stall period, at most every 15 s)."""
        every = every_seconds if every_seconds is not None else min(15.0, self.stall_seconds / 4)
        while True:
            await self.sample()
            await asyncio.sleep(every)

    async def sample(self) -> None:
        now, seen = time.monotonic(), set()
        lags: list[PartitionLag] = []
        for subscriber in self.broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            group = getattr(subscriber, "group_id", None) or ""
            ends = await self._end_offsets(consumer)
            for partition, end in ends.items():
                try:
                    position = await consumer.position(partition)
                except KafkaError:
                    continue  # revoked by a rebalance meanwhile
                highwater = max(end, consumer.highwater(partition) or 0)
                key = (group, partition.topic, partition.partition)
                seen.add(key)
                lag = max(highwater - position, 0)
                lags.append(PartitionLag(partition.topic, partition.partition, group, lag))
                labels = {"topic": partition.topic, "partition": str(partition.partition), "group": group}
                metrics.CONSUMER_LAG.labels(**labels).set(lag)
                last = self._last_move.get(key)
                if last is None or last[0] != position or lag == 0:
                    self._last_move[key] = (position, now)
                stalled = lag > 0 and now - self._last_move[key][1] >= self.stall_seconds
                metrics.CONSUMER_STALLED.labels(**labels).set(1 if stalled else 0)
                if stalled and key not in self.stalled:
                    log.error(
                        "consumer stalled",
                        group=group,
                        topic=partition.topic,
                        partition=partition.partition,
                        position=position,
                        lag=lag,
                        seconds=round(now - self._last_move[key][1]),
                    )
                if stalled:
                    self.stalled[key] = lag
                else:
                    self.stalled.pop(key, None)
        self.lags = lags
        for key in set(self._last_move) - seen:  # revoked: another consumer reports it now
            del self._last_move[key]
            self.stalled.pop(key, None)
            group, topic, number = key
            metrics.CONSUMER_STALLED.labels(topic=topic, partition=str(number), group=group).set(0)

    @staticmethod
    async def _end_offsets(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        partitions = list(consumer.assignment())
        if not partitions:
            return {}
        try:
            return dict(await consumer.end_offsets(partitions))
        except KafkaError:  # the broker did not answer this time: what the last fetch said
            return {tp: hw for tp in partitions if (hw := consumer.highwater(tp)) is not None}

    async def check(self) -> None:
        """Readiness: fails while any partition is stalled."""
        if self.stalled:
            raise ConsumerStalled(
                "; ".join(
                    f"{topic}[{part}] group {group}: lag {lag}"
                    for (group, topic, part), lag in self.stalled.items()
                )
            )


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
        if isinstance(record, tuple | list):  # a batch: `BatchConsumer` does this per record itself
            return await call_next(msg)
        topic = record.topic
        labels = {"topic": topic, "group": self.group_id}
        metrics.EVENTS_CONSUMED.labels(**labels).inc()
        started = time.perf_counter()
        try:
            check_record(record, self.settings)
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
        error_type=getattr(error, "dead_letter_type", type(error).__name__),
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


class EmptyValue(ValueError):
    """The record has no value (a tombstone, or a producer's mistake): there is no event to handle."""


class Undecodable(ValueError):
    """The consumer could not decode the record's batch (`UndecodableRecord`); its bytes are unknown."""


class PermanentError(Exception):
    """Raised by a handler for input it can never process (retrying cannot help): dead-letter now."""


class HandlingFailed(Exception):
    """A handler failed for good: `error`, after `attempts` attempts."""

    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(describe_error(error))
        self.error, self.attempts = error, attempts


NOT_RETRIED = (ValidationError, PayloadTooLarge, EmptyValue, Undecodable, PermanentError)


def check_record(record: Any, settings: Settings) -> None:
    """Refuse, before any handler sees it, a record that can never be an event."""
    if isinstance(record, UndecodableRecord):
        raise Undecodable(record.reason)
    body = record.value
    if not body:
        kind = "a tombstone (null value)" if body is None else "an empty value"
        raise EmptyValue(f"{kind}: an event is a JSON object")
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

    def subscribe(self, router: KafkaRouter, *, max_records: int, wait_ms: int) -> None:
        """Register on the service's router (its dead-letter middleware lets batches through)."""

        async def on_batch(values: list[bytes], message: KafkaMessage) -> None:
            await self.handle(message.raw_message)

        router.subscriber(
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
            # The handler sees raw bytes; `aietl.services.contracts` documents the topic's event model.
            include_in_schema=False,
        )(on_batch)

    async def handle(self, records: Sequence[Any]) -> None:
        started = time.perf_counter()
        metrics.EVENTS_CONSUMED.labels(**self.labels).inc(len(records))
        valid: list[tuple[Any, Parsed]] = []
        for record in records:
            try:
                check_record(record, self.settings)
                valid.append((record, self.parse(record.value)))
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
                outputs.extend(await call_with_retries(partial(self.one, item), self.settings, self.topic))
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
        middleware: type[_DeadLetterMiddleware] = type(
            f"DeadLetter_{group_id}",
            (_DeadLetterMiddleware,),
            {"broker": broker, "settings": settings, "group_id": group_id},
        )
        super().__init__(middlewares=[middleware])
        self.platform_broker = broker
        self.settings = settings
        self.group_id = group_id

    def consumes_batches(
        self,
        topic: str,
        *,
        parse: Callable[[bytes], Parsed],
        batch: Callable[[Sequence[Parsed]], Awaitable[Sequence[Event]]],
        one: Callable[[Parsed], Awaitable[Sequence[Event]]],
        max_records: int,
        wait_ms: int,
    ) -> None:
        """Subscribe this service's group to `topic` in batches (`BatchConsumer`)."""
        consumer = BatchConsumer(
            self.platform_broker, self.settings, self.group_id, topic, parse=parse, batch=batch, one=one
        )
        consumer.subscribe(self, max_records=max_records, wait_ms=wait_ms)

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
