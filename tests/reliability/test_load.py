"""A short sustained load on a gateway process: no errors, flat memory. Figures print with `-s`;
the long version is `python -m bench.gateway_load`."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from bench.gateway_load import drive
from tests.conftest import ADMIN_PASSWORD
from tests.reliability.conftest import Stack

SECONDS = float(os.environ.get("AIETL_LOAD_SECONDS", "15"))
MAX_RSS_GROWTH_MB = 40.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack_database", ["postgresql"], indirect=True)  # a gateway figure, not a store's
async def test_gateway_holds_sustained_load(stack: Stack) -> None:
    # A broker of its own: the thousands of events the load posts stay off the stack's topics,
    # which later tests' worker groups consume.
    async with stack.own_tansu() as servers:
        await _hold_load(stack, servers)


async def _hold_load(stack: Stack, servers: str) -> None:
    gateway = stack.spawn(
        "gateway-load",
        "gateway",
        port_env="AIETL_GATEWAY_PORT",
        AIETL_LOG_LEVEL="WARNING",
        KAFKA_BOOTSTRAP_SERVERS=servers,
    )
    await asyncio.to_thread(gateway.wait_listening)
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        login = await http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    result = await drive(gateway.url, headers, gateway.process.pid, seconds=SECONDS)
    figures = result.figures()
    print(f"\ngateway load over {result.seconds:.1f}s: {figures}")
    gateway.stop()
    assert not result.errors, result.errors[:5]
    assert result.requests > 0 and result.latencies["post"]
    assert result.rss_growth_mb() < MAX_RSS_GROWTH_MB, figures
