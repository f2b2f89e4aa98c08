"""Poison input on every consumed topic goes to `<topic>.dlq` with a reason; the consumer goes on.

Runs against `aietl up` as a process on the isolated stack (every worker and the gateway in one
process), once per stack database: SQLite, as a newcomer runs it, and PostgreSQL. Which topics are
consumed, and by which group, is read from the session runtime's subscribers (the same workers), so
a worker that starts consuming a new topic is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError

from aietl.services.gateway.events import INBOUND
from aietl.services.runtime import Runtime
from aietl.shared.events import CONTRACTS, DeadLetter, Event, Topic
from tests.conftest import ADMIN_PASSWORD
from tests.foundation.test_contracts import EXAMPLES
from tests.reliability.conftest import Stack
from tests.reliability.topics import read_all

CONTRACT_ERRORS = {"ValidationError", "PayloadTooLarge"}


@dataclass(frozen=True)
class Consumed:
    topic: str
    group: str


def consumed_topics(runtime: Runtime) -> list[Consumed]:
    found = {
        Consumed(topic, getattr(subscriber, "group_id"))
        for subscriber in runtime.broker.subscribers
        for topic in getattr(subscriber, "topic_names")
        if topic in CONTRACTS
    }
    return sorted(found, key=lambda c: c.topic)


def example_of(topic: str, project: str) -> Event:
    example = next(e for e in EXAMPLES if e.topic == topic)
    return example.model_copy(update={"event_id": uuid.uuid4(), "project_id": project})


def poison(topic: str, project: str, max_bytes: int) -> dict[str, bytes]:
    """Bad values for `topic`, by kind; each would be valid but for the one thing named."""
    good = json.loads(example_of(topic, project).model_dump_json())
    wrong_types = {**good, "event_id": "not-a-uuid", "occurred_at": "yesterday", "project_id": 42}
    return {
        "malformed_json": b'{"project_id": "' + project.encode() + b'", "event_id": ',
        "not_an_object": b"[1, 2, 3]",
        "wrong_schema_version": json.dumps({**good, "schema_version": 99}).encode(),
        "unknown_field": json.dumps({**good, "surprise": {"nested": True}}).encode(),
        "wrong_types": json.dumps(wrong_types).encode(),
        "missing_fields": json.dumps({"project_id": project}).encode(),
        # Valid JSON (trailing whitespace) that only its size disqualifies.
        "oversized": json.dumps(good).encode() + b" " * (max_bytes + 1),
        "binary": bytes(range(256)),
    }


async def committed_offset(servers: str, group: str, partition: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
    finally:
        await admin.close()
    meta = offsets.get(partition)
    return -1 if meta is None else meta.offset


@dataclass(frozen=True)
class Platform:
    stack: Stack
    url: str
    auth: dict[str, str]
    servers: str
    """The bus of this `aietl up`."""


@pytest.fixture(scope="module")
async def platform(stack: Stack) -> AsyncIterator[Platform]:
    """`aietl up` on the stack's database, ready (its workers consume), with an admin token. On
    tansu it gets a broker of its own, as a newcomer's `aietl up` has: the stack's shared tansu carries
    the groups and backlogs of every earlier test (on Apache Kafka, the stack's cluster)."""
    if stack.broker.name == "tansu":
        async with stack.own_tansu() as servers, _platform_on(stack, servers) as platform:
            yield platform
    else:
        async with _platform_on(stack, stack.settings.resolved_kafka_servers) as platform:
            yield platform


@asynccontextmanager
async def _platform_on(stack: Stack, servers: str) -> AsyncIterator[Platform]:
    process = stack.spawn("up-poison", "up", port_env="AIETL_GATEWAY_PORT", KAFKA_BOOTSTRAP_SERVERS=servers)
    try:
        await asyncio.to_thread(process.wait_listening)
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            deadline = time.monotonic() + 90
            while (ready := await http.get("/ready")).json()["status"] != "ready":
                assert process.process.poll() is None, process.output()
                assert time.monotonic() < deadline, f"aietl up not ready: {ready.text}\n{process.output()}"
                await asyncio.sleep(0.2)
            login = {"username": "admin", "password": ADMIN_PASSWORD}
            token = (await http.post("/api/v1/auth/login", json=login)).json()["access_token"]
        yield Platform(stack, process.url, {"Authorization": f"Bearer {token}"}, servers)
    finally:
        await asyncio.to_thread(process.stop)  # before any other process of the stack joins these groups


@pytest.mark.timeout(240)
async def test_poison_is_dead_lettered_and_the_consumer_goes_on(platform: Platform, runtime: Runtime) -> None:
    settings = platform.stack.settings
    servers = platform.servers
    consumed = consumed_topics(runtime)
    assert any(c.topic == Topic.SCHEMA_OBSERVED for c in consumed), consumed
    project = f"poison-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", max_request_size=2 * settings.kafka_max_message_bytes + 65_536
    )
    await producer.start()
    sent: dict[tuple[str, str], bytes] = {}
    good: dict[Consumed, tuple[Event, TopicPartition, int]] = {}
    try:
        for target in consumed:
            # One key for all of a topic's messages: one partition, so the good event comes last.
            key = f"{project}/{target.topic}".encode()
            for kind, value in poison(target.topic, project, settings.kafka_max_message_bytes).items():
                try:
                    await producer.send_and_wait(
                        target.topic, value, key=key, headers=[("kind", kind.encode())]
                    )
                except MessageSizeTooLargeError:
                    # Apache Kafka's own limit (message.max.bytes, about 1 MiB) refuses it to the
                    # producer before any consumer could see it; tansu accepts it.
                    assert kind == "oversized", kind
                    continue
                sent[(target.topic, kind)] = value
            event = example_of(target.topic, project)
            record = await producer.send_and_wait(target.topic, event.model_dump_json().encode(), key=key)
            good[target] = (event, TopicPartition(target.topic, record.partition), record.offset)
    finally:
        await producer.stop()

    # The consumer went on: each group committed past its good event, which came after the poison.
    deadline = time.monotonic() + 90
    for target, (_event, partition, offset) in good.items():
        while await committed_offset(servers, target.group, partition) <= offset:
            assert time.monotonic() < deadline, f"{target} stuck before offset {offset}"
            await asyncio.sleep(0.2)

    for target in consumed:
        letters = [
            DeadLetter.model_validate_json(value)
            for value in await read_all(servers, Topic.dlq(target.topic))
            if project.encode() in value or b"poison-" in value
        ]
        by_value = {letter.original_value(): letter for letter in letters if letter.original_key}
        for (topic, kind), value in sent.items():
            if topic != target.topic:
                continue
            letter = by_value.get(value) or next(
                (d for d in letters if "truncated" in d.reason and value.startswith(d.original_value())), None
            )
            assert letter is not None, f"{kind} on {topic} was not dead-lettered"
            assert letter.error_type in CONTRACT_ERRORS, (kind, topic, letter.error_type, letter.reason)
            assert letter.reason and letter.consumer_group == target.group
            assert letter.original_topic == topic
        event = good[target][0]
        rejected = [
            letter for letter in letters if letter.original_value() == event.model_dump_json().encode()
        ]
        assert all(letter.error_type not in CONTRACT_ERRORS for letter in rejected), rejected


@pytest.mark.parametrize("model", INBOUND, ids=lambda m: m.topic)
async def test_bad_event_posts_get_4xx_with_a_message(platform: Platform, model: type[Event]) -> None:
    url = "/api/v1/events/" + model.topic.replace(".", "-")
    max_bytes = 1_024  # only the body's shape matters here; the gateway's size limit is tested below
    bodies = poison(model.topic, "default", max_bytes)
    bodies.pop("oversized")
    headers = {**platform.auth, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=platform.url, timeout=30) as client:
        for kind, body in bodies.items():
            response = await client.post(url, content=body, headers=headers)
            assert 400 <= response.status_code < 500, (kind, response.status_code, response.text)
            assert response.json()["detail"], kind
        wrong_media = await client.post(
            url, content=b"project_id=default", headers={**platform.auth, "content-type": "text/plain"}
        )
        assert 400 <= wrong_media.status_code < 500
        huge = await client.post(url, content=b" " * (10 * 1_048_576 + 1), headers=headers)
    assert huge.status_code == 413 and "exceeds" in huge.json()["detail"]


async def test_values_the_database_refuses_are_4xx(platform: Platform) -> None:
    """NUL in text and integers beyond the column's range reach PostgreSQL as a data exception:
    the gateway answers 422 without echoing the value (found by fuzzing; once a 500). SQLite
    stores NUL, so there the same requests are answered as any other value."""
    async with httpx.AsyncClient(base_url=platform.url, timeout=30) as client:
        history = await client.get(
            "/api/v1/advanced/schema-drift/history",
            params={"project_id": "default", "connector_id": "c\x00", "table_name": "t"},
            headers=platform.auth,
        )
        assert history.status_code < 500, history.text
        connector = await client.post(
            "/api/v1/connectors",
            params={"project_id": "default"},
            json={"name": f"nul\x00{uuid.uuid4().hex[:6]}", "type": "milvus", "config": {}},
            headers=platform.auth,
        )
    assert connector.status_code < 500, connector.text
    if platform.stack.database_kind == "postgresql":
        assert 400 <= history.status_code < 500 and 400 <= connector.status_code < 500
