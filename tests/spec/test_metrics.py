"""The specification's "Key Metrics to Track" for the feature store, read from /metrics as Prometheus
scrapes them: online serving latency, feature freshness and the online store's hit rate."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

Headers = dict[str, str]
API = "/api/v1/advanced/features"


async def _samples(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _online(samples: dict, status: str) -> float:
    return samples.get(("aietl_feature_online_values_total", (("status", status),)), 0.0)


async def test_freshness_and_hit_rate_are_exported(
    client: httpx.AsyncClient, project_user: tuple[str, Headers]
) -> None:
    project, headers = project_user
    for name in ("clicks_1h", "views_1h"):
        registered = await client.post(
            f"{API}/register",
            json={"name": name, "feature_type": "int", "entity": "user", "feature_view": "activity"},
            headers=headers,
        )
        assert registered.status_code == 201, registered.text
    newest = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    values = [
        {"feature_name": "clicks_1h", "entity_id": "u1", "value": 3, "timestamp": newest.isoformat()},
        {
            "feature_name": "views_1h",
            "entity_id": "u1",
            "value": 9,
            "timestamp": (newest - timedelta(hours=2)).isoformat(),
        },
    ]
    written = await client.post(f"{API}/write", json={"features": values}, headers=headers)
    assert written.status_code == 200, written.text

    before = await _samples(client)
    read = await client.post(
        f"{API}/get-online",
        json={"feature_names": ["clicks_1h", "views_1h"], "entity_ids": ["u1", "u2", "u3"]},
        headers=headers,
    )
    assert read.status_code == 200, read.text
    after = await _samples(client)

    # u1 has both values; u2 and u3 have none: 2 hits, 4 misses of 6 values asked.
    assert _online(after, "present") - _online(before, "present") == 2
    assert _online(after, "missing") - _online(before, "missing") == 4
    freshness = after[
        (
            "aietl_feature_newest_value_timestamp_seconds",
            (("feature_view", "activity"), ("project", project)),
        )
    ]
    assert freshness == newest.timestamp()
    assert 290 <= time.time() - freshness < 400

    older = {**values[0], "value": 1, "timestamp": (newest - timedelta(days=1)).isoformat()}
    await client.post(f"{API}/write", json={"features": [older]}, headers=headers)
    latest = await _samples(client)
    key = (
        "aietl_feature_newest_value_timestamp_seconds",
        (("feature_view", "activity"), ("project", project)),
    )
    assert latest[key] == newest.timestamp(), "a late, older value must not make the view look staler"
