"""Online stores (Redis and SQLite) behave alike: newer event time wins, TTL never serves stale values,
and keys of different projects, views and versions never collide."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from aietl.services.features.domain import OnlineWrite, encode_online, online_status
from aietl.services.features.stores import EntityValues, OnlineStore
from aietl.services.features.stores.redis_online import RedisOnlineStore
from aietl.services.features.stores.sqlite_online import SqliteOnlineStore

SECOND = 1_000_000


@pytest.fixture(params=["redis", "sqlite"])
async def online(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[OnlineStore]:
    store: OnlineStore = (
        RedisOnlineStore(redis_url)
        if request.param == "redis"
        else SqliteOnlineStore(str(tmp_path / "online.db"))
    )
    yield store
    await store.close()


def value(
    view: str, entity: str, field: str, event_us: int, payload: object, ttl_us: int = 60 * SECOND
) -> OnlineWrite:
    return OnlineWrite(view, entity, field, event_us, encode_online(event_us, payload), event_us + ttl_us)


def now_us() -> int:
    return time.time_ns() // 1_000


async def test_older_event_time_never_overwrites_newer(online: OnlineStore) -> None:
    project, now = f"p{uuid.uuid4().hex[:8]}", now_us()
    await online.write(project, [value("v", "e1", "f@v1", now, "new")])
    await online.write(project, [value("v", "e1", "f@v1", now - SECOND, "late")])
    [[raw]] = await online.read(project, "v", ["e1"], ["f@v1"])
    assert online_status(raw, now_us(), 60 * SECOND) == ("new", "present")
    await online.write(project, [value("v", "e1", "f@v1", now + SECOND, "newer")])
    [[raw]] = await online.read(project, "v", ["e1"], ["f@v1"])
    assert online_status(raw, now_us(), 60 * SECOND)[0] == "newer"


async def test_one_write_naming_a_field_twice_keeps_the_newer(online: OnlineStore) -> None:
    """The Redis script checks a whole entity at once: a late value later in the same batch must
    still lose to a newer one earlier in it; equal event times: the last one wins."""
    project, now = f"p{uuid.uuid4().hex[:8]}", now_us()
    await online.write(
        project,
        [
            value("v", "e1", "f@v1", now, "new"),
            value("v", "e1", "f@v1", now - SECOND, "late"),
            value("v", "e1", "g@v1", now, "first"),
            value("v", "e1", "g@v1", now, "second"),
        ],
    )
    [raws] = await online.read(project, "v", ["e1"], ["f@v1", "g@v1"])
    assert [online_status(raw, now_us(), 60 * SECOND)[0] for raw in raws] == ["new", "second"]


async def test_value_past_ttl_is_reported_expired_never_served(online: OnlineStore) -> None:
    project, now = f"p{uuid.uuid4().hex[:8]}", now_us()
    ttl = 2 * SECOND
    await online.write(
        project,
        [
            value("v", "e1", "fresh@v1", now, 1, ttl),
            value("v", "e1", "stale@v1", now - 3 * SECOND, 2, 600 * SECOND),
        ],
    )
    [[fresh, stale, missing]] = await online.read(project, "v", ["e1"], ["fresh@v1", "stale@v1", "none@v1"])
    read_at = now_us()
    assert online_status(fresh, read_at, ttl) == (1, "present")
    assert online_status(stale, read_at, ttl) == (None, "expired")  # read with a 2 s TTL: 3 s old
    assert online_status(missing, read_at, ttl) == (None, "missing")
    assert online_status(fresh, now + ttl + 1, ttl) == (None, "expired")  # one microsecond past the edge


async def test_projects_views_and_versions_do_not_collide(online: OnlineStore) -> None:
    a, b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    now = now_us()
    await online.write(
        a,
        [
            value("v1", "e", "f@v1", now, "a-v1-f1"),
            value("v1", "e", "f@v2", now, "a-v1-f2"),
            value("v2", "e", "f@v1", now, "a-v2"),
        ],
    )
    await online.write(b, [value("v1", "e", "f@v1", now, "b-v1")])
    rows = await online.read(a, "v1", ["e", "other"], ["f@v1", "f@v2"])
    assert [[None if raw is None else online_status(raw, now, SECOND)[0] for raw in row] for row in rows] == [
        ["a-v1-f1", "a-v1-f2"],
        [None, None],
    ]
    [[raw]] = await online.read(b, "v1", ["e"], ["f@v1"])
    assert online_status(raw, now, SECOND)[0] == "b-v1"
    [[raw]] = await online.read(a, "v2", ["e"], ["f@v1"])
    assert online_status(raw, now, SECOND)[0] == "a-v2"


async def test_redis_key_expires_with_the_longest_ttl_it_holds(redis_url: str) -> None:
    store = RedisOnlineStore(redis_url)
    project, now = f"p{uuid.uuid4().hex[:8]}", now_us()
    await store.write(
        project,
        [value("v", "e", "short@v1", now, 1, 10 * SECOND), value("v", "e", "long@v1", now, 2, 100 * SECOND)],
    )
    remaining_ms = await store.redis.pttl(f"aietl:fs:{project}:v:e")
    assert 90_000 < remaining_ms <= 100_000
    await store.close()


async def test_grouped_writes_follow_the_same_rules(online: OnlineStore) -> None:
    """Materialisation's per-entity writes: newer event time still wins, values land per field."""
    project, now = f"p{uuid.uuid4().hex[:8]}", now_us()
    await online.write(project, [value("v", "e1", "f@v1", now, "newer")])
    older = encode_online(now - SECOND, "older").decode()
    fresh = encode_online(now - SECOND, [1.5]).decode()
    await online.write_entities(
        project,
        "v",
        [
            EntityValues("e1", now + 60 * SECOND, 2, orjson.dumps({"f@v1": older, "g@v1": fresh}).decode()),
            EntityValues("e2", now + 60 * SECOND, 1, orjson.dumps({"f@v1": older}).decode()),
        ],
    )
    rows = await online.read(project, "v", ["e1", "e2"], ["f@v1", "g@v1"])
    assert [
        [None if raw is None else online_status(raw, now, 60 * SECOND)[0] for raw in row] for row in rows
    ] == [
        ["newer", [1.5]],
        ["older", None],
    ]
