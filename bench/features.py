"""Feature store figures beside Feast 0.67's, same local Redis, same data, same run.

- online p50/p99: 1 entity x 50 features and 100 entities x 50 features, in-process
  (`FeatureStore.get_online`) and over HTTP (the gateway's route on uvicorn, loopback);
  Feast: `FeatureStore.get_online_features(...).to_dict()` on its Redis online store.
- materialisation rate offline (ClickHouse/chDB) -> Redis; Feast: `materialize` from Parquet.
- historical retrieval, 1,000,000 entity rows x 10 features, point-in-time in ClickHouse.

Feast's pins clash with the project's, so it lives in its own venv (`.aietl/venv-feast`, created on
demand) and its side runs in a subprocess of this run. Scale with AIETL_BENCH_FEATURES_SCALE (0.1 = quick).
"""

from __future__ import annotations

import asyncio
import http.client
import inspect
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from services.features import registry
from services.features.domain import FeatureType
from services.features.service import FeatureStore, ValueIn
from services.features.stores.clickhouse_offline import ClickHouseOfflineStore
from services.features.stores.redis_online import KEY_PREFIX, RedisOnlineStore
from services.runtime import Runtime
from shared.embedded_broker import free_port
from shared.migrate import upgrade_async
from shared.settings import Settings

SCALE = float(os.environ.get("AIETL_BENCH_FEATURES_SCALE", "1"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ONLINE_ENTITIES = 1_000
ONLINE_FEATURES = 50
READS_1 = 2_000
READS_100 = 500
MATERIALIZE_ENTITIES = int(100_000 * SCALE)
HISTORY_FEATURES = 10
HISTORY_STEPS = 3
HISTORICAL_ROWS = int(1_000_000 * SCALE)
FEAST_VENV = Path(".aietl/venv-feast")
FEAST_REQUIREMENT = "feast[redis]==0.67.0"  # the `bench-feast` extra of pyproject.toml
ADMIN_PASSWORD = "bench-admin-password"  # noqa: S105 (throwaway database of this run)
JWT_SECRET = "bench-" + "s" * 40
SEED = 7


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1_000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1_000, 3),
    }


def post_json(connection: Any, path: str, body: str, headers: dict[str, str]) -> bytes:
    """POST over one kept-alive connection with the standard library's client: the same lean client
    times both stores (the Feast script gets this function's source), so the figures are the servers'.
    A connection the server closed (`feast serve` restarts its worker every ~1,000 requests) is
    opened again once, as any keep-alive client does."""
    for attempt in (1, 2):
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            break
        except ConnectionError:
            connection.close()
            if attempt == 2:
                raise
    data: bytes = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    return data


def online_value(entity: int, feature: int) -> float:
    return float((entity * 31 + feature * 7) % 1000) / 10


async def timed_async(call: Any, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def timed(call: Any, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


async def prepare(runtime: Runtime, project: str) -> FeatureStore:
    async with runtime.database.transaction() as session:
        await registry.register_view(
            session,
            project,
            registry.ViewDefinition(
                name="bench_online",
                entity="user",
                ttl_seconds=86_400,
                features=[(f"f{i}", FeatureType.FLOAT64, "") for i in range(ONLINE_FEATURES)],
            ),
        )
        await registry.register_view(
            session,
            project,
            registry.ViewDefinition(
                name="bench_history",
                entity="user",
                ttl_seconds=86_400 * 30,
                features=[(f"h{i}", FeatureType.FLOAT64, "") for i in range(HISTORY_FEATURES)],
            ),
        )
    return FeatureStore(
        runtime.database,
        RedisOnlineStore(REDIS_URL),
        ClickHouseOfflineStore(runtime.clickhouse()),
        online_label="redis",
    )


async def ours_online(store: FeatureStore, project: str, now: datetime) -> dict[str, Any]:
    values = [
        ValueIn(f"f{f}", f"u{e}", online_value(e, f), now - timedelta(minutes=1))
        for e in range(ONLINE_ENTITIES)
        for f in range(ONLINE_FEATURES)
    ]
    started = time.perf_counter()
    await store.write(project, values, "online")
    write_rate = len(values) / (time.perf_counter() - started)
    names = [f"f{f}" for f in range(ONLINE_FEATURES)]
    rng = random.Random(SEED)
    one = [[f"u{rng.randrange(ONLINE_ENTITIES)}"] for _ in range(READS_1)]
    hundred = [[f"u{rng.randrange(ONLINE_ENTITIES)}" for _ in range(100)] for _ in range(READS_100)]
    check = await store.get_online(project, names, ["u3"])
    assert check[0]["features"]["f5"] == online_value(3, 5), check
    await timed_async(lambda: store.get_online(project, names, one[0]), 200)  # warm up
    it1, it100 = iter(one), iter(hundred)
    return {
        "write_online_values_per_s": round(write_rate),
        "inprocess_1x50": percentiles(
            await timed_async(lambda: store.get_online(project, names, next(it1)), READS_1)
        ),
        "inprocess_100x50": percentiles(
            await timed_async(lambda: store.get_online(project, names, next(it100)), READS_100)
        ),
    }


def ours_http(settings_env: dict[str, str], project: str) -> dict[str, Any]:
    port = free_port()
    launcher = (
        "import uvicorn\n"
        "from services.gateway.app import create_app\n"
        "from services.runtime import Runtime\n"
        "from shared.settings import Settings\n"
        "app = create_app(Runtime(Settings()), owns_runtime=False)\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", launcher], env={**os.environ, **settings_env})  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30.0) as web:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if web.get("/health").status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway did not start")
                time.sleep(0.2)
            login = web.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            login.raise_for_status()
        headers = {
            "Authorization": f"Bearer {login.json()['access_token']}",
            "Content-Type": "application/json",
        }
        names = [f"f{f}" for f in range(ONLINE_FEATURES)]
        rng = random.Random(SEED + 1)
        url = f"/api/v1/advanced/features/get-online?project_id={project}"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def read(entities: list[str]) -> None:
            body = json.dumps({"feature_names": names, "entity_ids": entities})
            json.loads(post_json(connection, url, body, headers))

        try:
            timed(lambda: read(["u1"]), 200)
            return {
                "http_1x50": percentiles(
                    timed(lambda: read([f"u{rng.randrange(ONLINE_ENTITIES)}"]), READS_1)
                ),
                "http_100x50": percentiles(
                    timed(lambda: read([f"u{rng.randrange(ONLINE_ENTITIES)}" for _ in range(100)]), READS_100)
                ),
            }
        finally:
            connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


async def ours_offline(store: FeatureStore, project: str, now: datetime) -> dict[str, Any]:
    """History of 10 features for N entities at 3 times each in ClickHouse; materialise; PIT query."""
    base = now - timedelta(days=3)
    values = [
        ValueIn(
            f"h{f}", f"u{e}", float(e % 97 + f + step), base + timedelta(hours=step * 12, seconds=e % 3600)
        )
        for step in range(HISTORY_STEPS)
        for e in range(MATERIALIZE_ENTITIES)
        for f in range(HISTORY_FEATURES)
    ]
    started = time.perf_counter()
    for start in range(0, len(values), 200_000):
        await store.write(project, values[start : start + 200_000], "offline")
    offline_rate = len(values) / (time.perf_counter() - started)
    del values
    started = time.perf_counter()
    materialized = await store.materialize(project, "bench_history", base - timedelta(days=1), now)
    materialize_seconds = time.perf_counter() - started
    rng = random.Random(SEED + 2)
    entity_rows = [
        (f"u{rng.randrange(MATERIALIZE_ENTITIES)}", base + timedelta(hours=rng.uniform(-2, 40)))
        for _ in range(HISTORICAL_ROWS)
    ]
    names = [f"h{f}" for f in range(HISTORY_FEATURES)]
    started = time.perf_counter()
    rows = await store.historical(project, names, entity_rows)
    historical_seconds = time.perf_counter() - started
    assert len(rows) == HISTORICAL_ROWS
    return {
        "offline_write_values_per_s": round(offline_rate),
        "materialize_values": materialized,
        "materialize_values_per_s": round(materialized / materialize_seconds),
        "historical_rows": HISTORICAL_ROWS,
        "historical_features": HISTORY_FEATURES,
        "historical_seconds": round(historical_seconds, 2),
        "historical_non_null_share": round(
            sum(v is not None for row in rows for v in row) / (len(rows) * 10), 3
        ),
    }


FEAST_SIDE = r'''
import json, random, statistics, sys, tempfile, time, os
from datetime import datetime, timedelta, timezone
from pathlib import Path
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

cfg = json.loads(sys.argv[1])
repo = Path(tempfile.mkdtemp(prefix="feast-bench-"))
host = cfg["redis"]
(repo / "feature_store.yaml").write_text(
    f"project: {cfg['project']}\nregistry: {repo}/registry.db\nprovider: local\n"
    f"online_store:\n  type: redis\n  connection_string: \"{host}\"\n"
    "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
)
now = datetime.now(timezone.utc).replace(microsecond=0)
n_online, n_feat = cfg["online_entities"], cfg["online_features"]
online = pd.DataFrame({"user_id": range(n_online)})
online["event_timestamp"] = now - timedelta(minutes=1)
for f in range(n_feat):
    online[f"f{f}"] = [float((e * 31 + f * 7) % 1000) / 10 for e in range(n_online)]
online.to_parquet(repo / "online.parquet")
n_mat, n_hist = cfg["materialize_entities"], cfg["history_features"]
base = now - timedelta(days=3)
frames = []
for step in range(cfg["history_steps"]):
    frame = pd.DataFrame({"user_id": range(n_mat)})
    frame["event_timestamp"] = [base + timedelta(hours=step * 12, seconds=e % 3600) for e in range(n_mat)]
    for f in range(n_hist):
        frame[f"h{f}"] = [float(e % 97 + f + step) for e in range(n_mat)]
    frames.append(frame)
pd.concat(frames).to_parquet(repo / "history.parquet")
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
online_view = FeatureView(
    name="bench_online", entities=[user], ttl=timedelta(days=1),
    schema=[Field(name=f"f{f}", dtype=Float64) for f in range(n_feat)],
    source=FileSource(path=str(repo / "online.parquet"), timestamp_field="event_timestamp"),
)
history_view = FeatureView(
    name="bench_history", entities=[user], ttl=timedelta(days=30),
    schema=[Field(name=f"h{f}", dtype=Float64) for f in range(n_hist)],
    source=FileSource(path=str(repo / "history.parquet"), timestamp_field="event_timestamp"),
)
def pct(samples):
    samples = sorted(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return {"p50_ms": round(statistics.median(samples) * 1000, 3), "p99_ms": round(p99 * 1000, 3)}


def serve_over_http(repo, refs, n_online, rng, cfg):
    """Feast's own feature server (`feast serve`), timed with the same `post_json` client as ours."""
    import socket, subprocess, requests
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    feast_cli = str(Path(sys.executable).parent / "feast")
    server = subprocess.Popen(
        [feast_cli, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port),
         "--no-access-log", "-w", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if session.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("feast serve did not start")
            time.sleep(0.3)
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        def run(count, repeat):
            samples = []
            for _ in range(repeat):
                users = [rng.randrange(n_online) for _ in range(count)]
                started = time.perf_counter()
                body = json.dumps({"features": refs, "entities": {"user_id": users}})
                json.loads(post_json(connection, "/get-online-features", body, headers))
                samples.append(time.perf_counter() - started)
            return pct(samples)
        run(1, 200)
        return {"http_1x50": run(1, cfg["reads_1"]), "http_100x50": run(100, cfg["reads_100"])}
    finally:
        server.terminate()
        server.wait(timeout=30)


store = FeatureStore(repo_path=str(repo))
store.apply([user, online_view, history_view])
out = {}
try:
    started = time.perf_counter()
    store.materialize(now - timedelta(days=5), now + timedelta(minutes=1), feature_views=["bench_online"])
    out["materialize_online_view_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    store.materialize(now - timedelta(days=5), now + timedelta(minutes=1), feature_views=["bench_history"])
    seconds = time.perf_counter() - started
    out["materialize_values"] = n_mat * n_hist
    out["materialize_values_per_s"] = round(n_mat * n_hist / seconds)
    refs = [f"bench_online:f{f}" for f in range(n_feat)]
    check = store.get_online_features(features=refs, entity_rows=[{"user_id": 3}]).to_dict()
    assert check["f5"][0] == float((3 * 31 + 5 * 7) % 1000) / 10, check["f5"]
    rng = random.Random(cfg["seed"])
    def run(count, repeat):
        samples = []
        for _ in range(repeat):
            rows = [{"user_id": rng.randrange(n_online)} for _ in range(count)]
            started = time.perf_counter()
            store.get_online_features(features=refs, entity_rows=rows).to_dict()
            samples.append(time.perf_counter() - started)
        return pct(samples)
    run(1, 100)
    out["inprocess_1x50"] = run(1, cfg["reads_1"])
    out["inprocess_100x50"] = run(100, cfg["reads_100"])
    try:
        out |= serve_over_http(repo, refs, n_online, rng, cfg)
    except Exception as error:
        out["http_error"] = repr(error)[:500]
    rows = cfg["feast_historical_rows"]
    if rows:
        entity_df = pd.DataFrame({"user_id": [rng.randrange(n_mat) for _ in range(rows)]})
        entity_df["event_timestamp"] = [base + timedelta(hours=rng.uniform(-2, 40)) for _ in range(rows)]
        started = time.perf_counter()
        refs_history = [f"bench_history:h{f}" for f in range(n_hist)]
        frame = store.get_historical_features(entity_df=entity_df, features=refs_history).to_df()
        out["historical_rows"] = rows
        out["historical_rows_returned"] = len(frame)
        out["historical_seconds"] = round(time.perf_counter() - started, 2)
finally:
    store.teardown()
print(json.dumps(out))
'''


def feast_python() -> Path:
    python = FEAST_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)  # noqa: S603
        subprocess.run([str(python), "-m", "pip", "install", "-q", FEAST_REQUIREMENT], check=True)  # noqa: S603
    return python


def feast_side(historical_rows: int) -> dict[str, Any]:
    redis_client = redis.Redis.from_url(REDIS_URL)
    kwargs = redis_client.connection_pool.connection_kwargs
    connection = f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)},db={kwargs.get('db', 0)}"
    config = {
        "project": f"aietl_bench_{uuid.uuid4().hex[:6]}",
        "redis": connection,
        "online_entities": ONLINE_ENTITIES,
        "online_features": ONLINE_FEATURES,
        "materialize_entities": MATERIALIZE_ENTITIES,
        "history_features": HISTORY_FEATURES,
        "history_steps": HISTORY_STEPS,
        "reads_1": READS_1,
        "reads_100": READS_100,
        "seed": SEED,
        "feast_historical_rows": historical_rows,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write("from typing import Any\n" + inspect.getsource(post_json) + FEAST_SIDE)
    result = subprocess.run(  # noqa: S603
        [str(feast_python()), script.name, json.dumps(config)], capture_output=True, text=True, check=False
    )
    os.unlink(script.name)
    if result.returncode != 0:
        return {"error": result.stderr[-2_000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def clean_redis(project: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for keys in _chunks(client.scan_iter(match=f"{KEY_PREFIX}:{project}:*", count=10_000), 10_000):
        client.delete(*keys)


def _chunks(items: Any, size: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def ours(data_dir: Path, project: str) -> dict[str, Any]:
    database = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
    settings = Settings(
        environment="test", data_dir=data_dir, database_url=database, redis_url=REDIS_URL,
        jwt_secret=JWT_SECRET, admin_password=ADMIN_PASSWORD, default_project=project,
    )  # fmt: skip
    await upgrade_async(settings.resolved_database_url)
    runtime = Runtime(settings)
    try:
        store = await prepare(runtime, project)
        now = datetime.now(UTC).replace(microsecond=0)
        figures = await ours_online(store, project, now)
        env = {
            "AIETL_DATA_DIR": str(data_dir / "gateway"),
            "DATABASE_URL": database,
            "REDIS_URL": REDIS_URL,
            "AIETL_FEATURES_ONLINE_STORE": "redis",
            "AIETL_JWT_SECRET": JWT_SECRET,
            "AIETL_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "AIETL_DEFAULT_PROJECT": project,
            "AIETL_LOG_LEVEL": "WARNING",
        }
        figures |= await asyncio.to_thread(ours_http, env, project)
        figures |= await ours_offline(store, project, now)
        await store.online.close()
        return figures
    finally:
        await runtime.close()


def run() -> dict[str, object]:
    project = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="aietl-bench-features-") as tmp:
        try:
            figures: dict[str, Any] = {"ours": asyncio.run(ours(Path(tmp), project))}
        finally:
            clean_redis(project)
    feast_rows = int(os.environ.get("AIETL_BENCH_FEAST_HISTORICAL_ROWS", str(min(HISTORICAL_ROWS, 100_000))))
    figures["feast_0_67"] = feast_side(feast_rows)
    ours_figures, feast_figures = figures["ours"], figures["feast_0_67"]
    for shape in ("1x50", "100x50"):
        theirs = feast_figures.get(f"inprocess_{shape}", {}).get("p99_ms")
        if theirs:
            figures[f"speedup_p99_inprocess_{shape}"] = round(
                theirs / ours_figures[f"inprocess_{shape}"]["p99_ms"], 1
            )
        theirs_http = feast_figures.get(f"http_{shape}", {}).get("p99_ms")
        if theirs_http:
            figures[f"speedup_p99_http_{shape}"] = round(
                theirs_http / ours_figures[f"http_{shape}"]["p99_ms"], 1
            )
    if feast_figures.get("materialize_values_per_s"):
        figures["speedup_materialize"] = round(
            ours_figures["materialize_values_per_s"] / feast_figures["materialize_values_per_s"], 1
        )
    return figures
