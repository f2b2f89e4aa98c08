"""Fixtures on real local services, read from the environment (see README, "Tests").

- PostgreSQL: `TEST_POSTGRES_URL` (server admin URL); each session gets a fresh database, dropped after.
- Kafka: `KAFKA_BOOTSTRAP_SERVERS`, else an embedded tansu broker on a free loopback port, or with
  `AIETL_TEST_BROKER=kafka` a three-broker Apache Kafka cluster (`deploy/local/kafka.sh`; `make test`
  runs the foundation, interop and poison suites a second time so). Tests that need Apache Kafka
  itself (broker failures, security) use the `kafka_cluster` fixture in either pass.
- Redis: `REDIS_URL` (tests use unique keys; nothing is flushed).
- ClickHouse: chDB under the session's data dir unless `CLICKHOUSE_DSN` is set; Milvus Lite likewise.
"""

from __future__ import annotations

import gc
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import httpx
import pytest

from aietl.services.gateway.admin import ensure_bootstrap_admin
from aietl.services.gateway.app import create_app
from aietl.services.runtime import WORKERS, Runtime, create_worker_router
from aietl.shared.bus import ensure_topics
from aietl.shared.embedded_broker import EmbeddedBroker
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.kafka.cluster import KafkaCluster, running_cluster
from tests.support import fresh_postgres_database

ADMIN_PASSWORD = "admin-test-password"
JWT_SECRET = "test-secret-" + "x" * 40
TEST_BROKER = os.environ.get("AIETL_TEST_BROKER", "tansu")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (asyncpg URL)."""
    with fresh_postgres_database(postgres_admin_url, "aietl_test") as url:
        yield url


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Apache Kafka, three brokers on loopback with a SASL_SSL listener, for this session."""
    with running_cluster(tmp_path_factory.mktemp("kafka"), brokers=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def warehouse_url(postgres_admin_url: str) -> Iterator[str]:
    """A second fresh database: the PostgreSQL run target of pipeline templates (never the platform's)."""
    with fresh_postgres_database(postgres_admin_url, "aietl_warehouse") as url:
        yield url


@pytest.fixture(scope="session")
def kafka_servers(request: pytest.FixtureRequest) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if TEST_BROKER == "kafka":
        yield request.getfixturevalue("kafka_cluster").bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aietl-data")


@pytest.fixture(scope="session")
def settings(
    postgres_url: str, warehouse_url: str, kafka_servers: str, redis_url: str, data_dir: Path
) -> Settings:
    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=postgres_url,
        kafka_bootstrap_servers=kafka_servers,
        kafka_replication_factor=3 if TEST_BROKER == "kafka" else 1,
        redis_url=redis_url,
        kafka_session_timeout_ms=6_000,
        kafka_heartbeat_interval_ms=500,
        kafka_fetch_max_wait_ms=20,
        handler_retry_backoff_seconds=0.01,
        jwt_secret=JWT_SECRET,
        admin_password=ADMIN_PASSWORD,
        min_historical_days=3,
        # The store fakes and closed ports the tests point connectors at listen on loopback; the
        # tests of outbound refusals (tests/reliability/test_attacks_bounds.py) run without this.
        outbound_allowed_hosts=["127.0.0.1"],
        templates_connections={
            "warehouse": warehouse_url,
            "lite": f"sqlite+aiosqlite:///{data_dir / 'warehouse.db'}",
        },
    )


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> Settings:
    await upgrade_async(settings.resolved_database_url)
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
async def runtime(migrated: Settings) -> AsyncIterator[Runtime]:
    """The whole platform in this process, as `aietl up` runs it: every worker consuming."""
    runtime = Runtime(migrated, client_id="aietl-tests")
    for name in WORKERS:
        runtime.broker.include_router(create_worker_router(name, runtime))
    await runtime.start_consuming()
    await ensure_bootstrap_admin(runtime)
    yield runtime
    await runtime.broker.stop()
    await runtime.close()


@pytest.fixture(scope="session")
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, owns_runtime=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


@pytest.fixture(scope="session")
async def admin_token(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def auth(admin_token: str) -> dict[str, str]:
    """Headers of the administrator (member of the default project, allowed everywhere)."""
    return {"Authorization": f"Bearer {admin_token}"}


async def user_in(client: httpx.AsyncClient, auth: dict[str, str], project: str, role: str) -> dict[str, str]:
    """A new non-admin user with `role` in `project` (only): their bearer headers."""
    username = f"u-{uuid.uuid4().hex[:10]}"
    password = "user-password-1"
    created = await client.post(
        "/api/v1/users",
        json={"username": username, "password": password, "roles": {project: role}},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    login = await client.post("/api/v1/auth/login", json={"username": username, "password": password})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture
async def project_user(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A fresh project and a non-admin user who belongs only to it, as a member: (project_id, headers)."""
    project = f"p-{uuid.uuid4().hex[:10]}"
    created = await client.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    assert created.status_code == 201, created.text
    return project, await user_in(client, auth, project, "member")


@pytest.fixture
async def project_maintainer(
    client: httpx.AsyncClient, auth: dict[str, str], project_user: tuple[str, dict[str, str]]
) -> dict[str, str]:
    """Headers of a maintainer of `project_user`'s project (creates templates and connections)."""
    return await user_in(client, auth, project_user[0], "maintainer")


# The pure domain tests: no I/O, no service, seconds in all (`make test-pure`, `pytest -m pure`).
PURE_MODULES = frozenset(
    {
        "console/test_pure.py",
        "drift/test_detect.py",
        "drift/test_types.py",
        "features/test_domain.py",
        "foundation/test_contracts.py",
        "predict/test_forecast.py",
        "templates/test_schedule.py",
        "vector_sink/test_domain.py",
    }
)
SERVICE_FIXTURES = frozenset(
    name for name, value in list(globals().items()) if type(value).__name__ == "FixtureFunctionDefinition"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the pure modules' tests `pure`; one of them asking for a service fixture is an error,
    so the mark cannot quietly start needing PostgreSQL or a broker."""
    root = Path(__file__).parent
    for item in items:
        if item.path.relative_to(root).as_posix() not in PURE_MODULES:
            continue
        services = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if services:
            raise pytest.UsageError(f"{item.nodeid} is in a pure module but uses {sorted(services)}")
        item.add_marker(pytest.mark.pure)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Name and stop SQLite connections some test left open. Each keeps aiosqlite's worker thread
    alive, and that thread is not a daemon: the interpreter waited for it forever after the summary
    (seen once in CI, 20 minutes into a 90-minute limit). The file names the test (tmp paths do)."""
    gc.collect()
    leaked = [
        connection
        for connection in gc.get_objects()
        if isinstance(connection, aiosqlite.Connection) and connection._thread.is_alive()
    ]
    if not leaked:
        return
    files = sorted({str(inspect.getclosurevars(c._connector).nonlocals.get("database")) for c in leaked})
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"{len(leaked)} SQLite connections left open, now stopped: {files}", yellow=True)
    for connection in leaked:
        connection.stop()
