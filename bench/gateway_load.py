"""Sustained load on a gateway process: online feature reads and event posts, RSS sampled.

`python -m bench gateway_load` runs 60 s (scaled by `AIETL_BENCH_SCALE`; 2 s in the smoke run)
against `aietl gateway` of its own: tansu, a fresh PostgreSQL database, and the Redis online store
(`AIETL_FEATURES_ONLINE_STORE=redis`), so the reads measured are Redis reads; its data folder is
removed afterwards. `drive` is also what the short CI test (tests/reliability/test_load.py) uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import psutil

from aietl.services.features.stores.redis_online import KEY_PREFIX
from aietl.shared.embedded_broker import EmbeddedBroker, free_port
from aietl.shared.migrate import upgrade_async
from bench import Scale
from bench.processes import aietl, delete_keys, serving
from tests.support import fresh_postgres_database

CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class LoadResult:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"read": [], "post": []})
    rss_mb: list[float] = field(default_factory=list)
    seconds: float = 0.0
    gateway_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    def figures(self) -> dict[str, object]:
        every = sorted(self.latencies["read"] + self.latencies["post"])
        figures: dict[str, object] = {
            "requests": self.requests,
            "errors": len(self.errors),
            "throughput_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(_quantile(every, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(every, 0.99) * 1000, 2),
            "rss_start_mb": round(self.rss_mb[0], 1) if self.rss_mb else None,
            "rss_end_mb": round(self.rss_mb[-1], 1) if self.rss_mb else None,
            "rss_growth_after_warmup_mb": round(self.rss_growth_mb(), 1),
            # 100 is a whole core: a load client near it measures itself, not the gateway
            "gateway_cpu_percent": self.percent_of_a_core(self.gateway_cpu_seconds),
            "client_cpu_percent": self.percent_of_a_core(self.client_cpu_seconds),
        }
        for kind, values in self.latencies.items():
            figures[f"{kind}_p99_ms"] = round(_quantile(sorted(values), 0.99) * 1000, 2) if values else None
        return figures

    def percent_of_a_core(self, cpu_seconds: float) -> int:
        return round(100 * cpu_seconds / self.seconds) if self.seconds else 0

    def rss_growth_mb(self) -> float:
        """Median RSS of the last quarter minus that of the second quarter (the first is warm-up)."""
        quarter = max(1, len(self.rss_mb) // 4)
        if len(self.rss_mb) < 4:
            return 0.0
        return statistics.median(self.rss_mb[-quarter:]) - statistics.median(
            self.rss_mb[quarter : 2 * quarter]
        )


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of the process and its children (the gateway's workers, if any)."""
    own = process.cpu_times()
    children = [child.cpu_times() for child in process.children(recursive=True)]
    return own.user + own.system + sum(times.user + times.system for times in children)


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def prepare_features(
    http: httpx.AsyncClient, headers: dict[str, str], project: str, entities: int
) -> bool:
    """Register a feature and write it for `entities` entities; False when the features API is absent."""
    registered = await http.post(
        "/api/v1/advanced/features/register",
        params={"project_id": project},
        json={"name": "load_score", "feature_type": "float64", "entity": "user", "storage_type": "online"},
        headers=headers,
    )
    if registered.status_code == 404 and "Not Found" in registered.text:
        return False
    assert registered.status_code in (200, 201), registered.text
    now = datetime.now(UTC).isoformat()
    values = [
        {"feature_name": "load_score", "entity_id": f"user_{n}", "value": float(n), "timestamp": now}
        for n in range(entities)
    ]
    written = await http.post(
        "/api/v1/advanced/features/write",
        params={"project_id": project},
        json={"features": values, "storage": "online"},
        headers=headers,
    )
    assert written.status_code == 200, written.text
    return True


class KeepAliveConnection:
    """A lean HTTP/1.1 keep-alive client for the load: httpx spent a whole core to drive the gateway
    at half a core (measured: client 95%, gateway 50% of a core), so the figures were the client's.
    Requests are pre-encoded; a response is read by its Content-Length, which the gateway sets."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader, self.writer, self.head = reader, writer, head

    @classmethod
    async def open(cls, base_url: str, headers: dict[str, str]) -> KeepAliveConnection:
        address = httpx.URL(base_url)
        reader, writer = await asyncio.open_connection(address.host, address.port)
        lines = [f"Host: {address.host}:{address.port}", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return cls(reader, writer, ("\r\n".join(lines) + "\r\n").encode())

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.head, len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = CONTENT_LENGTH.search(head)
        if length is None:
            raise RuntimeError(f"a response without Content-Length: {head[:200]!r}")
        return status, await self.reader.readexactly(int(length.group(1)))

    def close(self) -> None:
        self.writer.close()


async def drive(
    base_url: str,
    headers: dict[str, str],
    pid: int,
    *,
    seconds: float,
    concurrency: int = 8,
    project: str = "default",
) -> LoadResult:
    """Half online reads (if the features API exists), half event posts, from `concurrency` clients."""
    result = LoadResult()
    process = psutil.Process(pid)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        reads = await prepare_features(http, headers, project, entities=200)
    deadline = time.monotonic() + seconds
    connector = f"load-{uuid.uuid4().hex[:6]}"
    read_path = f"/api/v1/advanced/features/get-online?project_id={project}"
    post_path = "/api/v1/events/schema-observed"

    async def client(number: int) -> None:
        connection = await KeepAliveConnection.open(base_url, headers)
        sent = 0
        try:
            while time.monotonic() < deadline:
                sent += 1
                kind = "read" if reads and sent % 2 == 0 else "post"
                started = time.perf_counter()
                if kind == "read":
                    entity = f"user_{(number * 7 + sent) % 200}"
                    body = b'{"feature_names":["load_score"],"entity_ids":["%s"]}' % entity.encode()
                    status, text = await connection.post(read_path, body)
                    ok = status == 200 and entity.encode() in text
                else:
                    event = {
                        "project_id": project,
                        "connector_id": connector,
                        "table_name": f"t{number}",
                        "columns": [{"name": "id", "type": "int"}],
                    }
                    status, text = await connection.post(post_path, json.dumps(event).encode())
                    ok = status == 202
                result.latencies[kind].append(time.perf_counter() - started)
                result.requests += 1
                if not ok:
                    result.errors.append(f"{kind} {status}: {text[:200]!r}")
        finally:
            connection.close()

    async def sample() -> None:
        while time.monotonic() < deadline:
            result.rss_mb.append(process.memory_info().rss / 1_048_576)
            await asyncio.sleep(0.25)

    started, gateway_cpu, client_cpu = time.monotonic(), _cpu_seconds(process), time.process_time()
    await asyncio.gather(sample(), *(client(n) for n in range(concurrency)))
    result.seconds = time.monotonic() - started
    result.gateway_cpu_seconds = _cpu_seconds(process) - gateway_cpu
    result.client_cpu_seconds = time.process_time() - client_cpu
    return result


def run(scale: Scale) -> dict[str, object]:
    """A gateway process of its own under `drive` for 60 s (scaled)."""
    seconds = scale.seconds(60, smoke=2)
    admin_url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    password, port, project = uuid.uuid4().hex, free_port(), f"load{uuid.uuid4().hex[:8]}"
    with (
        fresh_postgres_database(admin_url, "aietl_load") as database_url,
        EmbeddedBroker() as broker,
        tempfile.TemporaryDirectory(prefix="aietl_load_") as data_dir,
    ):
        asyncio.run(upgrade_async(database_url))
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "AIETL_FEATURES_ONLINE_STORE": "redis",
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "AIETL_ADMIN_PASSWORD": password,
            "AIETL_JWT_SECRET": uuid.uuid4().hex * 2,
            "AIETL_GATEWAY_PORT": str(port),
            "AIETL_LOG_LEVEL": "WARNING",
            "AIETL_DATA_DIR": data_dir,
            "AIETL_DEFAULT_PROJECT": project,
        }
        url = f"http://127.0.0.1:{port}"
        try:
            with serving(aietl("gateway"), env, url) as gateway:
                figures = asyncio.run(_load(url, password, gateway.pid, seconds, project))
        finally:
            delete_keys(REDIS_URL, f"{KEY_PREFIX}:{project}:*")
    return {"online_store": "redis", "database": "postgresql", **figures}


async def _load(base_url: str, password: str, pid: int, seconds: float, project: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base_url) as http:
        login = await http.post("/api/v1/auth/login", json={"username": "admin", "password": password})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    result = await drive(base_url, headers, pid, seconds=seconds, project=project)
    return {"seconds": round(result.seconds, 1), **result.figures()}
