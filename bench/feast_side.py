"""Feast 0.67's side of `bench.features`, run by the Python of Feast's own venv (`.aietl/venv-feast`):

- `feast_side.py side CONFIG`: builds a feature repo (Redis online store, DuckDB offline store over
  Parquet: an embedded columnar SQL engine, as chDB is on our side), loads the same data as ours,
  then answers `bench.sides` requests: in-process online reads, materialisation, historical retrieval.
- `feast_side.py http CONFIG PORT`: Feast's feature server app (`feast.feature_server.get_app`) on
  uvicorn, one process, start-up objects frozen, as our gateway runs (`aietl gateway`).
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its neighbours, not the package

import feature_data
import sides


def write_repo(config: dict[str, Any]) -> Path:
    repo = Path(config["repo"])
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {config['project']}\nregistry: {repo}/registry.db\nprovider: local\n"
        f'online_store:\n  type: redis\n  connection_string: "{config["redis"]}"\n'
        "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n"
    )
    return repo


def views(repo: Path, sizes: feature_data.Sizes) -> tuple[Entity, FeatureView, FeatureView]:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    online = FeatureView(
        name="bench_online",
        entities=[user],
        ttl=timedelta(days=1),
        schema=[Field(name=f"f{f}", dtype=Float64) for f in range(sizes.online_features)],
        source=FileSource(path=str(repo / "online.parquet"), timestamp_field="event_timestamp"),
    )
    history = FeatureView(
        name="bench_history",
        entities=[user],
        ttl=timedelta(days=30),
        schema=[Field(name=f"h{f}", dtype=Float64) for f in range(sizes.history_features)],
        source=FileSource(path=str(repo / "history.parquet"), timestamp_field="event_timestamp"),
    )
    return user, online, history


def write_data(repo: Path, sizes: feature_data.Sizes, now: datetime, base: datetime) -> None:
    online = pd.DataFrame({"user_id": range(sizes.online_entities)})
    online["event_timestamp"] = now - timedelta(minutes=1)
    for f in range(sizes.online_features):
        online[f"f{f}"] = [feature_data.online_value(e, f) for e in range(sizes.online_entities)]
    online.to_parquet(repo / "online.parquet")
    frames = []
    for step in range(sizes.history_steps):
        entities = range(sizes.materialize_entities)
        frame = pd.DataFrame({"user_id": entities})
        frame["event_timestamp"] = [
            base + timedelta(seconds=feature_data.history_offset_seconds(e, step)) for e in entities
        ]
        for f in range(sizes.history_features):
            frame[f"h{f}"] = [feature_data.history_value(e, f, step) for e in entities]
        frames.append(frame)
    pd.concat(frames).to_parquet(repo / "history.parquet")


def side(config: dict[str, Any]) -> None:
    sizes = feature_data.Sizes(**config["sizes"])
    repo = write_repo(config)
    now, base = datetime.fromisoformat(config["now"]), datetime.fromisoformat(config["base"])
    write_data(repo, sizes, now, base)
    store = FeatureStore(repo_path=str(repo))
    user, online_view, history_view = views(repo, sizes)
    store.apply([user, online_view, history_view])
    store.materialize(now - timedelta(days=5), now + timedelta(minutes=1), feature_views=["bench_online"])
    refs = [f"bench_online:f{f}" for f in range(sizes.online_features)]
    check = store.get_online_features(features=refs, entity_rows=[{"user_id": 3}]).to_dict()
    assert check["f5"][0] == feature_data.online_value(3, 5), check["f5"]
    rng = random.Random(feature_data.SEED)
    client = redis.Redis.from_url(config["redis_url"])

    def online(count: int) -> sides.Handler:
        def measure(repeat: int) -> dict[str, Any]:
            batches = feature_data.read_batches(rng, repeat, count, sizes.online_entities)
            rows = iter([[{"user_id": e} for e in batch] for batch in batches])
            samples = sides.timed(
                lambda: store.get_online_features(features=refs, entity_rows=next(rows)).to_dict(), repeat
            )
            return {"samples": samples}

        return measure

    def forget_history() -> None:
        """Feast skips values not newer than those stored: each round starts from no history."""
        ts_field = b"_ts:bench_history"
        fields = [ts_field] + [_field_hash(f"bench_history:h{f}") for f in range(sizes.history_features)]
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(match=b"*" + config["project"].encode(), count=10_000):
            pipe.hdel(key, *fields)
        pipe.execute()

    def materialize(_repeat: int) -> dict[str, Any]:
        forget_history()
        started = time.perf_counter()
        store.materialize(base - timedelta(days=1), now, feature_views=["bench_history"])
        seconds = time.perf_counter() - started
        values = sizes.materialize_entities * sizes.history_features
        return {"rate": values / seconds, "info": {"values": values}}

    def historical(_repeat: int) -> dict[str, Any]:
        rows = feature_data.entity_rows(sizes.historical_rows, sizes.materialize_entities)
        entity_df = pd.DataFrame({"user_id": [entity for entity, _ in rows]})
        entity_df["event_timestamp"] = [base + timedelta(hours=hours) for _, hours in rows]
        features = [f"bench_history:h{f}" for f in range(sizes.history_features)]
        started = time.perf_counter()
        frame = store.get_historical_features(entity_df=entity_df, features=features).to_df()
        seconds = time.perf_counter() - started
        values = frame[[f"h{f}" for f in range(sizes.history_features)]]
        return {
            "rate": len(rows) / seconds,
            "info": {
                "rows_asked": len(rows),
                "rows_returned": len(frame),
                "non_null_values": int(values.notna().sum().sum()),
            },
        }

    try:
        sides.serve(
            {
                "inprocess_1x50": online(1),
                "inprocess_100x50": online(100),
                "materialize": materialize,
                "historical": historical,
            }
        )
    finally:
        store.teardown()


def _field_hash(name: str) -> bytes:
    from feast.infra.online_stores.helpers import _mmh3

    return bytes(_mmh3(name))


def http(config: dict[str, Any], port: int) -> None:
    import uvicorn
    from feast.feature_server import get_app

    app = get_app(FeatureStore(repo_path=config["repo"]))
    sides.freeze_startup_objects()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    mode, config = sys.argv[1], json.loads(sys.argv[2])
    if mode == "side":
        side(config)
    else:
        http(config, int(sys.argv[3]))
