"""Producers nobody here wrote: librdkafka (confluent-kafka), kafka-python and Apache Kafka's own Java
client, each sending the same messages with a given compression codec; and a raw read of the batches
on the broker, to show which codec each message really travelled with."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from confluent_kafka import Producer as ConfluentProducer
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[2]
KAFKA_LIB = Path(os.environ.get("AIETL_KAFKA_CACHE", ROOT / ".aietl" / "kafka")) / "lib"
JAVA_SOURCE = Path(__file__).with_name("InteropProducer.java")
Codec = Literal["gzip", "snappy", "lz4", "zstd"]
CODECS: tuple[Codec, ...] = ("gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Written:
    topic: str
    partition: int
    offset: int


@dataclass
class JavaProducer:
    """`InteropProducer.java`, compiled once against the Kafka jars `deploy/local/kafka.sh` resolved."""

    classes: Path
    idempotent: bool = False
    name: str = field(default="java-kafka-clients", init=False)

    @classmethod
    def compile(cls, into: Path, *, idempotent: bool) -> JavaProducer:
        assert KAFKA_LIB.is_dir(), f"{KAFKA_LIB} missing: run deploy/local/kafka.sh fetch (make test does)"
        done = subprocess.run(
            ["javac", "-cp", f"{KAFKA_LIB}/*", "-d", str(into), str(JAVA_SOURCE)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return cls(into, idempotent)

    def send(self, servers: str, messages: Sequence[Message], codec: Codec) -> list[Written]:
        def encoded(data: bytes) -> str:
            return base64.b64encode(data).decode()

        lines = [
            "\t".join(
                (
                    codec,
                    m.topic,
                    encoded(m.key),
                    encoded(m.value),
                    ",".join(f"{name}={encoded(value)}" for name, value in m.headers),
                )
            )
            for m in messages
        ]
        done = subprocess.run(
            [
                "java",
                "-Xmx128m",
                "-cp",
                f"{self.classes}:{KAFKA_LIB}/*",
                "InteropProducer",
                servers,
                str(self.idempotent).lower(),
            ],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4_000:]
        return [
            Written(topic, int(partition), int(offset))
            for topic, partition, offset in (line.split("\t") for line in done.stdout.splitlines())
        ]


@dataclass
class ConfluentKafka:
    """librdkafka, with the murmur2 partitioner of the Java client (its own default hashes keys
    differently, so a key would land on another partition than the platform's producers choose)."""

    name: str = "confluent-kafka"

    def send(self, servers: str, messages: Sequence[Message], codec: Codec) -> list[Written]:
        producer = ConfluentProducer(
            {
                "bootstrap.servers": servers,
                "compression.type": codec,
                "acks": "all",
                "linger.ms": 50,
                "partitioner": "murmur2_random",
            }
        )
        written: list[Written] = []
        errors: list[object] = []

        def delivered(error: object, message: object) -> None:
            if error is not None:
                errors.append(error)
            else:
                written.append(Written(message.topic(), message.partition(), message.offset()))  # type: ignore[attr-defined]

        for m in messages:
            producer.produce(m.topic, m.value, key=m.key, headers=list(m.headers), on_delivery=delivered)
        assert producer.flush(60) == 0 and not errors, errors
        return written


@dataclass
class KafkaPython:
    idempotent: bool = False
    name: str = "kafka-python"

    def send(self, servers: str, messages: Sequence[Message], codec: Codec) -> list[Written]:
        producer = KafkaProducer(
            bootstrap_servers=servers.split(","),
            compression_type=codec,
            acks="all",
            linger_ms=50,
            enable_idempotence=self.idempotent,
        )
        try:
            futures = [producer.send(m.topic, m.value, key=m.key, headers=list(m.headers)) for m in messages]
            producer.flush(60)
            return [
                Written(meta.topic, meta.partition, meta.offset)
                for meta in (future.get(timeout=60) for future in futures)
            ]
        finally:
            producer.close(timeout=10)


async def codecs_of(servers: str, written: Sequence[Written]) -> dict[Written, str]:
    """The compression codec of the batch that holds each written message, as the broker stores it."""
    client = AIOKafkaClient(bootstrap_servers=servers)
    await client.bootstrap()
    found: dict[Written, str] = {}
    try:
        await client.force_metadata_update()
        for message in written:
            node = client.cluster.leader_for_partition(TopicPartition(message.topic, message.partition))
            request = FetchRequest(
                1_000, 1, 1_048_576, 0, [(message.topic, [(message.partition, message.offset, 1_048_576)])]
            )
            response = await client.send(node, request)
            for _topic, answers in response.topics:
                for _partition, _error, _highwater, *data in answers:
                    records = MemoryRecords(data[-1])
                    while records.has_next():
                        batch = records.next_batch()
                        if batch.base_offset <= message.offset < batch.next_offset:
                            found[message] = CODEC_IDS[batch.compression_type]
    finally:
        await client.close()
    return found
