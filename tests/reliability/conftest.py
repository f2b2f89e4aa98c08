"""An isolated stack for the tests that kill processes: its own bus and its own database.

The session fixtures (`settings`, `runtime`) keep every worker consuming in the pytest process; a
worker process under test must not share its consumer group with them, so it gets a bus of its own.

The stack's database is a dimension of its own (`stack_database`): every test on the stack runs on
SQLite, the database of `aietl up` that newcomers run, and on PostgreSQL, production's. A test that
is about neither narrows it with `@pytest.mark.parametrize("stack_database", [...], indirect=True)`.

The bus is a dimension of its own (`stack_broker`): tansu by default; a test that parametrises it
with `BROKERS` (`@pytest.mark.parametrize("stack_broker", BROKERS, indirect=True)`) runs on the
three-broker Apache Kafka cluster as well (on PostgreSQL only: the SQLite
runs stand for `aietl up`, whose bus is tansu), with topics replicated three times.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from aietl.services.gateway.app import create_app
from aietl.services.runtime import Runtime
from aietl.shared.bus import ensure_topics
from aietl.shared.db import Database
from aietl.shared.embedded_broker import EmbeddedBroker, free_port, port_open
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD, JWT_SECRET
from tests.kafka.cluster import KafkaCluster
from tests.support import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
# Kept small so that an oversized event is cheap to build; the bus refuses anything larger.
MAX_MESSAGE_BYTES = 16_384
DATABASES = ("sqlite", "postgresql")
# The SQLite runs repeat what PostgreSQL proves at a quarter of the events: they are there to catch
# what only SQLite does (one writer at a time, a file per database), which shows at any scale.
SQLITE_SHARE = 4
BROKERS = ("tansu", "kafka")


def scale(default: int) -> int:
    """Event counts scale with `AIETL_RELIABILITY_EVENTS` (the crash tests' total; others in proportion)."""
    return int(os.environ.get("AIETL_RELIABILITY_EVENTS", default))


@dataclass
class Stack:
    """Where the processes under test connect, and the environment that points them there."""

    settings: Settings
    env: dict[str, str]
    logs: Path
    database: Database
    database_kind: str  # one of DATABASES
    broker: StackBroker
    processes: list[Service] = field(default_factory=list)

    def events(self, count: int) -> int:
        """`count` events on PostgreSQL, a share of them on SQLite (at least one)."""
        return count if self.database_kind == "postgresql" else max(1, count // SQLITE_SHARE)

    @asynccontextmanager
    async def own_tansu(self) -> AsyncIterator[str]:
        """A tansu of its own with the platform's topics (yields its address), for a process whose
        groups or events must not meet the stack's: its bus carries every earlier test's backlog."""
        with EmbeddedBroker() as broker:
            own = self.settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
            await ensure_topics(own)
            yield broker.bootstrap_servers

    def spawn(self, name: str, *args: str, port_env: str | None = None, **env: str) -> Service:
        """Start `python -m aietl.services.cli <args>`; its output goes to a log file kept for diagnosis."""
        port = free_port()
        environment = {**self.env, **env}
        if port_env is not None:
            environment[port_env] = str(port)
        log_path = self.logs / f"{name}-{len(self.processes)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "aietl.services.cli", *args],
                cwd=ROOT,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, port, log_path)
        self.processes.append(service)
        return service


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not listening within {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like an OOM kill or a lost node."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6_000:]


@dataclass(frozen=True)
class StackBroker:
    """The stack's bus: where it is, how its topics are replicated, and the cluster when it is Kafka."""

    name: str
    servers: str
    replication_factor: int = 1
    cluster: KafkaCluster | None = None


@pytest.fixture(scope="session", params=["tansu"])
def stack_broker(request: pytest.FixtureRequest, stack_database: str) -> Iterator[StackBroker]:
    """The stack's bus; a tansu of its own per stack database, so that one stack's groups and
    backlogs never reach the other's processes (the Kafka cluster is the session's)."""
    del stack_database  # a dependency only: one broker per database stack
    if request.param == "kafka":
        cluster: KafkaCluster = request.getfixturevalue("kafka_cluster")
        yield StackBroker("kafka", cluster.bootstrap, replication_factor=3, cluster=cluster)
        return
    with EmbeddedBroker() as broker:
        yield StackBroker("tansu", broker.bootstrap_servers)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`milvus-lite server` on a free loopback port: a Milvus that a worker process and the test can
    both reach (a Milvus Lite file allows one process at a time). Yields its URI."""
    data = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    with (data / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "milvus-lite"),
                "server",
                "--data-dir",
                str(data / "data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not port_open("127.0.0.1", port):
            output = (data / "server.log").read_text(errors="replace")[-4_000:]
            assert server.poll() is None, f"milvus-lite server exited:\n{output}"
            assert time.monotonic() < deadline, f"milvus-lite server not listening:\n{output}"
            time.sleep(0.1)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session", params=DATABASES)
def stack_database(request: pytest.FixtureRequest) -> str:
    """Which database the stack runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def stack_database_url(
    stack_database: str, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database of that kind: a PostgreSQL database, or a SQLite file as `aietl up` makes."""
    if stack_database == "sqlite":
        folder = tmp_path_factory.mktemp("reliability-sqlite")
        yield f"sqlite+aiosqlite:///{folder / 'aietl.db'}"
        return
    with fresh_postgres_database(postgres_admin_url, "aietl_rel") as url:
        yield url


@pytest.fixture(scope="session")
async def stack(
    stack_broker: StackBroker,
    stack_database: str,
    stack_database_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp(f"reliability-data-{stack_database}")
    logs = tmp_path_factory.mktemp("reliability-logs")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIETL_") and key not in {"CLICKHOUSE_HOST", "CLICKHOUSE_DSN", "MILVUS_HOST"}
    }
    env.update(
        DATABASE_URL=stack_database_url,
        KAFKA_BOOTSTRAP_SERVERS=stack_broker.servers,
        AIETL_KAFKA_REPLICATION_FACTOR=str(stack_broker.replication_factor),
        REDIS_URL=redis_url,
        AIETL_ENVIRONMENT="test",
        AIETL_DATA_DIR=str(data_dir),
        AIETL_JWT_SECRET=JWT_SECRET,
        AIETL_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AIETL_LOG_FORMAT="json",
        AIETL_KAFKA_SESSION_TIMEOUT_MS="3000",
        AIETL_KAFKA_HEARTBEAT_INTERVAL_MS="500",
        AIETL_KAFKA_FETCH_MAX_WAIT_MS="20",
        AIETL_HANDLER_RETRY_BACKOFF_SECONDS="0.01",
        AIETL_KAFKA_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
        PYTHONUNBUFFERED="1",
    )
    settings = Settings(
        environment="test",
        data_dir=data_dir,
        database_url=stack_database_url,
        kafka_bootstrap_servers=stack_broker.servers,
        kafka_replication_factor=stack_broker.replication_factor,
        redis_url=redis_url,
        kafka_max_message_bytes=MAX_MESSAGE_BYTES,
    )
    await upgrade_async(settings.resolved_database_url)
    await ensure_topics(settings)
    database = Database(settings.resolved_database_url)
    stack = Stack(settings, env, logs, database, stack_database, stack_broker)
    yield stack
    for service in stack.processes:
        await asyncio.to_thread(service.stop)
    await database.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apache Kafka runs pair with PostgreSQL only: the SQLite runs stand for `aietl up`, whose bus
    is tansu, and the pair would double the slowest tests for nothing either run does not show."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        pair = (params.get("stack_broker"), params.get("stack_database"))
        (dropped if pair == ("kafka", "sqlite") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def random_address() -> str:
    """A client address no other test uses: login throttling counts per client."""
    return "10." + ".".join(str(random.randrange(1, 255)) for _ in range(3))


def gateway_client(app: FastAPI, address: str) -> httpx.AsyncClient:
    """An HTTP client of `app` connecting from `address` (the peer the gateway sees)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def gateway(runtime: Runtime) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A gateway app of its own on the session's runtime, reached from an address of its own."""
    app = create_app(runtime, owns_runtime=False)
    async with gateway_client(app, random_address()) as http:
        yield app, http
