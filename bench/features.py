"""Feature store figures beside Feast 0.67's: same local Redis, same data, interleaved rounds.

Cases (`bench.compare`: each round measures a case on one side, then on the other):
- online reads of 1 entity x 50 features and 100 entities x 50, random entities out of 1,000.
  In-process: `FeatureStore.get_online` vs Feast's `get_online_features(...).to_dict()`, each in a
  side process of its own (ours on the event loop our processes use, uvloop). Over HTTP: `aietl
  gateway` (JWT auth, fast route) vs Feast's feature server app, each one uvicorn process with
  start-up objects frozen, timed by the same keep-alive `http.client` client in this process.
- materialisation of 100,000 entities x 10 features into Redis: ours from ClickHouse (chDB), Feast's
  from Parquet through its DuckDB offline store (both embedded columnar SQL engines). Each round
  starts with the view's values deleted from Redis on both sides (Feast skips values it already holds).
- historical retrieval: 1,000,000 entity rows x 10 features, point in time, over 3,000,000 values
  (ours: ClickHouse ASOF JOIN; Feast: DuckDB), rows returned and non-null values checked on both sides.

Feast's pins clash with ours, so it lives in its own venv (`.aietl/venv-feast`, made on demand from
the `bench-feast` extra's requirement) and its side is `bench/feast_side.py` under that venv's Python.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from aietl.services.features import registry
from aietl.services.features.domain import FeatureType
from aietl.services.features.service import FeatureStore, ValueIn
from aietl.services.features.stores.clickhouse_offline import ClickHouseOfflineStore
from aietl.services.features.stores.redis_online import KEY_PREFIX, RedisOnlineStore
from aietl.services.runtime import Runtime
from aietl.shared.embedded_broker import EmbeddedBroker, free_port
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from bench import Scale
from bench.compare import Case, Measurement, SideProcess, compare
from bench.feature_data import (
    SEED,
    Sizes,
    entity_rows,
    history_offset_seconds,
    history_value,
    online_value,
    read_batches,
)
from bench.processes import ROOT, aietl, delete_keys, serving
from bench.sides import post_json, serve, timed

REDIS_URL = "redis://127.0.0.1:6379/0"
FEAST_VENV = ROOT / ".aietl" / "venv-feast"
FEAST_REQUIREMENT = "feast[redis,duckdb]==0.67.0"  # the `bench-feast` extra of pyproject.toml
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 (throwaway database of this run)
JWT_SECRET = "bench-" + "s" * 40
OFFLINE_WRITE_CHUNK = 200_000
ONLINE_GOALS = {"p50": 4.0, "p99": 3.0}


def online_cases(way: str, sizes: Sizes) -> list[Case]:
    """Reads of 1 and of 100 entities x 50 features (in-process or over HTTP), warmed up alike."""
    return [
        Case(f"{way}_1x50", sizes.reads_1, warmup=200, goals=ONLINE_GOALS),
        Case(f"{way}_100x50", sizes.reads_100, warmup=20, goals=ONLINE_GOALS),
    ]


def sizes_at(scale: Scale) -> Sizes:
    return Sizes(
        online_entities=scale.count(1_000, smoke=50),
        online_features=50,
        reads_1=scale.count(2_000, smoke=20),
        reads_100=scale.count(500, smoke=5),
        materialize_entities=scale.count(100_000, smoke=200),
        history_features=10,
        history_steps=3,
        historical_rows=scale.count(1_000_000, smoke=500),
    )


# --- our in-process side (`python -m bench.features side CONFIG`, a process of its own) ---


async def _prepare(
    store: FeatureStore, runtime: Runtime, project: str, sizes: Sizes, now: datetime, base: datetime
) -> dict[str, Any]:
    async with runtime.database.transaction() as session:
        for name, prefix, count, ttl in (
            ("bench_online", "f", sizes.online_features, 86_400),
            ("bench_history", "h", sizes.history_features, 86_400 * 30),
        ):
            features = [(f"{prefix}{i}", FeatureType.FLOAT64, "") for i in range(count)]
            await registry.register_view(
                session,
                project,
                registry.ViewDefinition(name=name, entity="user", ttl_seconds=ttl, features=features),
            )
    online = [
        ValueIn(f"f{f}", f"u{e}", online_value(e, f), now - timedelta(minutes=1))
        for e in range(sizes.online_entities)
        for f in range(sizes.online_features)
    ]
    await store.write(project, online, "online")
    history = [
        ValueIn(
            f"h{f}",
            f"u{e}",
            history_value(e, f, step),
            base + timedelta(seconds=history_offset_seconds(e, step)),
        )
        for step in range(sizes.history_steps)
        for e in range(sizes.materialize_entities)
        for f in range(sizes.history_features)
    ]
    for start in range(0, len(history), OFFLINE_WRITE_CHUNK):
        await store.write(project, history[start : start + OFFLINE_WRITE_CHUNK], "offline")
    names = [f"f{f}" for f in range(sizes.online_features)]
    check = await store.get_online(project, names, ["u3"])
    assert check[0]["features"]["f5"] == online_value(3, 5), check
    return {"offline_values": len(history)}


def side(config: dict[str, Any]) -> None:
    """Our side: the store in this process, set up like Feast's, answering `bench.sides` requests."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    sizes, project = Sizes(**config["sizes"]), config["project"]
    now, base = datetime.fromisoformat(config["now"]), datetime.fromisoformat(config["base"])
    settings = Settings(
        environment="test", data_dir=Path(config["data_dir"]), database_url=config["database_url"],
        redis_url=REDIS_URL, jwt_secret=JWT_SECRET, admin_password=ADMIN_PASSWORD, default_project=project,
    )  # fmt: skip
    loop.run_until_complete(upgrade_async(settings.resolved_database_url))
    runtime = Runtime(settings, client_id="bench-features")
    store = FeatureStore(
        runtime.database,
        RedisOnlineStore(REDIS_URL),
        ClickHouseOfflineStore(runtime.clickhouse()),
        online_label="redis",
    )
    names = [f"f{f}" for f in range(sizes.online_features)]
    rng = random.Random(SEED)

    def online(count: int) -> Any:
        def measure(repeat: int) -> dict[str, Any]:
            batches = iter(
                [[f"u{e}" for e in b] for b in read_batches(rng, repeat, count, sizes.online_entities)]
            )

            async def reads() -> list[float]:
                samples = []
                for entities in batches:
                    started = time.perf_counter()
                    await store.get_online(project, names, entities)
                    samples.append(time.perf_counter() - started)
                return samples

            return {"samples": loop.run_until_complete(reads())}

        return measure

    def materialize(_repeat: int) -> dict[str, Any]:
        delete_keys(REDIS_URL, f"{KEY_PREFIX}:{project}:bench_history:*")
        started = time.perf_counter()
        values = loop.run_until_complete(
            store.materialize(project, "bench_history", base - timedelta(days=1), now)
        )
        return {"rate": values / (time.perf_counter() - started), "info": {"values": values}}

    def historical(_repeat: int) -> dict[str, Any]:
        rows = [
            (f"u{entity}", base + timedelta(hours=hours))
            for entity, hours in entity_rows(sizes.historical_rows, sizes.materialize_entities)
        ]
        features = [f"h{f}" for f in range(sizes.history_features)]
        started = time.perf_counter()
        values = loop.run_until_complete(store.historical(project, features, rows))
        seconds = time.perf_counter() - started
        return {
            "rate": len(rows) / seconds,
            "info": {
                "rows_asked": len(rows),
                "rows_returned": len(values),
                "non_null_values": sum(v is not None for row in values for v in row),
            },
        }

    try:
        info = loop.run_until_complete(_prepare(store, runtime, project, sizes, now, base))
        serve(
            {
                "inprocess_1x50": online(1),
                "inprocess_100x50": online(100),
                "materialize": materialize,
                "historical": historical,
            },
            info,
        )
    finally:
        loop.run_until_complete(store.online.close())
        loop.run_until_complete(runtime.close())


# --- HTTP: one client in this process times both servers ---


class HttpSide:
    """Online reads over one kept-alive connection; the timing covers request out, body in."""

    def __init__(
        self, name: str, port: int, path: str, headers: dict[str, str], body: Any, entities: int
    ) -> None:
        self.name, self.path, self.headers, self.body, self.entities = name, path, headers, body, entities
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.rng = random.Random(SEED + 1)

    def measure(self, case: str, repeat: int) -> Measurement:
        count = 1 if case.endswith("_1x50") else 100
        bodies = iter([self.body(batch) for batch in read_batches(self.rng, repeat, count, self.entities)])
        answers: list[bytes] = []
        samples = timed(
            lambda: answers.append(post_json(self.connection, self.path, next(bodies), self.headers)), repeat
        )
        return Measurement(samples=samples, info={"response_bytes": len(answers[-1])})

    def close(self) -> None:
        self.connection.close()


def _our_http(port: int, sizes: Sizes, project: str) -> HttpSide:
    url = f"http://127.0.0.1:{port}"
    login = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}", "Content-Type": "application/json"}
    names = [f"f{f}" for f in range(sizes.online_features)]

    def body(entities: list[int]) -> str:
        return json.dumps({"feature_names": names, "entity_ids": [f"u{e}" for e in entities]})

    side = HttpSide(
        "ours",
        port,
        f"/api/v1/advanced/features/get-online?project_id={project}",
        headers,
        body,
        sizes.online_entities,
    )
    answer = json.loads(post_json(side.connection, side.path, body([3]), headers))
    assert answer["feature_vectors"][0]["features"]["f5"] == online_value(3, 5), answer
    return side


def _feast_http(port: int, sizes: Sizes) -> HttpSide:
    refs = [f"bench_online:f{f}" for f in range(sizes.online_features)]

    def body(entities: list[int]) -> str:
        return json.dumps({"features": refs, "entities": {"user_id": entities}})

    side = HttpSide(
        "feast",
        port,
        "/get-online-features",
        {"Content-Type": "application/json"},
        body,
        sizes.online_entities,
    )
    answer = json.loads(post_json(side.connection, side.path, body([3]), side.headers))
    names = answer["metadata"]["feature_names"]
    assert answer["results"][names.index("f5")]["values"][0] == online_value(3, 5), answer
    return side


# --- the run ---


def feast_python() -> Path:
    """Feast's venv, made or brought up to `FEAST_REQUIREMENT` (an older venv lacked DuckDB)."""
    python, installed = FEAST_VENV / "bin" / "python", FEAST_VENV / "aietl-requirement.txt"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)  # noqa: S603
    if not installed.exists() or installed.read_text() != FEAST_REQUIREMENT:
        subprocess.run([str(python), "-m", "pip", "install", "-q", FEAST_REQUIREMENT], check=True)  # noqa: S603
        installed.write_text(FEAST_REQUIREMENT)
    return python


def run(scale: Scale) -> dict[str, Any]:
    sizes, project = sizes_at(scale), f"bench{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="aietl-bench-features-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        database_url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        config = {
            "project": project, "sizes": sizes.as_dict(), "now": now.isoformat(),
            "base": (now - timedelta(days=3)).isoformat(), "database_url": database_url,
            "data_dir": str(folder / "ours"), "repo": str(folder / "feast"), "redis_url": REDIS_URL,
            "redis": "127.0.0.1:6379,db=0",
        }  # fmt: skip
        stack.callback(delete_keys, REDIS_URL, f"{KEY_PREFIX}:{project}:*")
        ours = stack.enter_context(
            SideProcess("ours", [sys.executable, "-m", "bench.features", "side", json.dumps(config)])
        )
        feast = None
        if scale.peers:
            feast_script = [str(feast_python()), str(ROOT / "bench" / "feast_side.py")]
            feast = stack.enter_context(SideProcess("feast", [*feast_script, "side", json.dumps(config)]))
        skipped = (
            "Feast runs in its own venv; the smoke run does not install it (AIETL_BENCH_PEERS=1 runs it)"
        )
        figures: dict[str, Any] = {"sizes": sizes.as_dict(), "prepared": ours.info}
        print("    in-process online reads", file=sys.stderr, flush=True)
        figures["inprocess"] = compare(
            ours, feast, online_cases("inprocess", sizes), scale.rounds, skipped=skipped
        )
        figures["http"] = _http(scale, stack, folder, config, sizes, skipped, feast_script if feast else None)
        print("    materialisation and historical retrieval", file=sys.stderr, flush=True)
        figures["offline"] = compare(
            ours,
            feast,
            [Case("materialize", 1, kind="rate", goals={"rate": 3.0}), Case("historical", 1, kind="rate")],
            scale.rounds,
            skipped=skipped,
        )
        return figures


def _http(
    scale: Scale,
    stack: ExitStack,
    folder: Path,
    config: dict[str, Any],
    sizes: Sizes,
    skipped: str,
    feast_script: list[str] | None,
) -> dict[str, Any]:
    print("    online reads over HTTP", file=sys.stderr, flush=True)
    broker = stack.enter_context(EmbeddedBroker())
    port = free_port()
    env = {
        "AIETL_DATA_DIR": str(folder / "gateway"),
        "DATABASE_URL": config["database_url"],
        "REDIS_URL": REDIS_URL,
        "AIETL_FEATURES_ONLINE_STORE": "redis",
        "AIETL_JWT_SECRET": JWT_SECRET,
        "AIETL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AIETL_DEFAULT_PROJECT": config["project"],
        "AIETL_LOG_LEVEL": "WARNING",
        "AIETL_GATEWAY_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
    }
    stack.enter_context(serving(aietl("gateway"), env, f"http://127.0.0.1:{port}"))
    ours = _our_http(port, sizes, config["project"])
    stack.callback(ours.close)
    feast = None
    if feast_script is not None:
        feast_port = free_port()
        stack.enter_context(
            serving(
                [*feast_script, "http", json.dumps(config), str(feast_port)],
                {},
                f"http://127.0.0.1:{feast_port}",
            )
        )
        feast = _feast_http(feast_port, sizes)
        stack.callback(feast.close)
    return compare(ours, feast, online_cases("http", sizes), scale.rounds, skipped=skipped)


if __name__ == "__main__":
    side(json.loads(sys.argv[2]))
