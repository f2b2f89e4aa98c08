"""The gateway SIGKILLed while it accepts writes: every event it acknowledged (202) is on the topic.

Acknowledged means the broker had it (acks=all) before the answer was sent; a request cut by the kill
may or may not have been published, and its client never got a 202, so it is free to retry.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid

import httpx

from aietl.shared.events import Topic
from tests.conftest import ADMIN_PASSWORD
from tests.reliability.conftest import Stack, scale
from tests.reliability.topics import read_all

CONCURRENCY = 16
KILLS = 2


async def post_until_refused(base_url: str, connector: str, acked: set[str]) -> int:
    """Post schema observations from many clients at once until the gateway stops answering;
    returns how many requests were cut off."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        token = (await http.post("/api/v1/auth/login", json=login)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        async def client(number: int) -> int:
            for sent in range(1_000_000):
                body = {
                    "project_id": "default",
                    "connector_id": connector,
                    "table_name": f"t{number}",
                    "columns": [{"name": f"c{sent}", "type": "int"}],
                }
                try:
                    response = await http.post("/api/v1/events/schema-observed", json=body, headers=headers)
                except httpx.TransportError:
                    return 1
                assert response.status_code == 202, response.text
                acked.add(response.json()["event_id"])
            return 0

        return sum(await asyncio.gather(*(client(n) for n in range(CONCURRENCY))))


async def test_acknowledged_writes_survive_a_gateway_kill(stack: Stack) -> None:
    rng = random.Random(int(os.environ.get("AIETL_RELIABILITY_SEED", random.randrange(1_000_000))))
    connector = f"gw-crash-{uuid.uuid4().hex[:8]}"
    acked: set[str] = set()
    cut_off = 0
    for _ in range(KILLS):
        gateway = stack.spawn("gateway", "gateway", port_env="AIETL_GATEWAY_PORT")
        await asyncio.to_thread(gateway.wait_listening)
        target = len(acked) + rng.randrange(50, max(51, stack.events(scale(3_000)) // 6))
        posting = asyncio.create_task(post_until_refused(gateway.url, connector, acked))
        while len(acked) < target and not posting.done():
            await asyncio.sleep(0.002)
        gateway.kill()
        cut_off += await posting

    assert cut_off > 0, "the kills did not interrupt requests in flight"
    on_topic = {
        json.loads(value)["event_id"]
        for value in await read_all(stack.settings.resolved_kafka_servers, Topic.SCHEMA_OBSERVED)
        if connector.encode() in value
    }
    missing = acked - on_topic
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events are not on the topic"
    # Cut-off requests may or may not have been published; nothing else may appear.
    assert len(on_topic - acked) <= cut_off
