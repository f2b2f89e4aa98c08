"""Predict end to end in one process: runs in over REST and the bus, predictions out over REST."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.predict.service import get_service
from services.predict.simulator import simulate
from services.runtime import Runtime
from shared.bus import publish_event
from shared.events import PipelineRunMetrics, Topic
from tests.support import eventually, read_topic

BASE = "/api/v1/advanced/predict"


def runs_payload(project: str, *, pipelines: int, days: int, seed: int) -> list[dict[str, Any]]:
    start = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    runs = simulate(project_id=project, pipelines=pipelines, days=days, seed=seed, start=start).runs
    runs = runs.drop(columns=["project_id"])
    return json.loads(runs.to_json(orient="records", date_format="iso"))


@pytest.fixture(scope="module")
async def history(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    """A project with 6 simulated pipelines and 15 days of hourly runs, ingested in bulk."""
    project = f"pred-{uuid.uuid4().hex[:8]}"
    created = await client.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    assert created.status_code == 201, created.text
    runs = runs_payload(project, pipelines=6, days=15, seed=5)
    response = await client.post(
        f"{BASE}/runs", params={"project_id": project}, json={"runs": runs}, headers=auth
    )
    assert response.status_code == 202, response.text
    assert response.json()["stored"] == len(runs)
    return project


async def test_failure_prediction_explains_itself(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    response = await client.get(
        f"{BASE}/failure/pipeline-001", params={"project_id": history, "horizon_hours": 24}, headers=auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 <= body["failure_probability"] <= 1 and 0 <= body["confidence_score"] <= 1
    assert body["severity"] in ("low", "medium", "high", "critical")
    assert body["description"] and body["recommended_actions"]
    assert body["prevention_window_hours"] >= 0
    for factor in body["contributing_factors"]:
        assert {"factor", "current_value", "threshold", "severity"} <= factor.keys()


async def test_resource_forecast_and_plot(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    params = {"project_id": history, "resource_type": "memory", "forecast_hours": 36}
    response = await client.get(f"{BASE}/resources/pipeline-002", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["forecast"]) == 36
    assert all(p["lower"] <= p["mean"] <= p["upper"] for p in body["forecast"])
    assert body["capacity"] > 0 and 0 <= body["probability_exceed_capacity"] <= 1
    assert body["predicted_peak"]["value"] == max(p["mean"] for p in body["forecast"])
    image = await client.get(f"{BASE}/resources/pipeline-002/plot.png", params=params, headers=auth)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    bad = await client.get(
        f"{BASE}/resources/pipeline-002", params={"project_id": history, "resource_type": "gpu"}, headers=auth
    )
    assert bad.status_code == 422 and "resource_type" in bad.text


async def test_costs_and_maintenance_window(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    costs = await client.get(f"{BASE}/costs", params={"project_id": history}, headers=auth)
    assert costs.status_code == 200, costs.text
    body = costs.json()
    assert body["current_daily_cost"] > 0 and body["predicted_monthly_cost"] > 0
    assert all({"date", "pipeline_id", "robust_z"} <= a.keys() for a in body["anomalies"])
    assert all(s["reasoning"] for s in body["savings"])
    window = await client.get(
        f"{BASE}/maintenance-window/pipeline-003",
        params={"project_id": history, "duration_hours": 2, "blackout": ["Sat 00:00-Mon 00:00"]},
        headers=auth,
    )
    assert window.status_code == 200, window.text
    assert window.json()["start_hour_of_week"] < 5 * 24 - 1
    bad = await client.get(
        f"{BASE}/maintenance-window/pipeline-003",
        params={"project_id": history, "blackout": "soon"},
        headers=auth,
    )
    assert bad.status_code == 422 and "blackout" in bad.text


async def test_short_history_answers_409_with_what_is_missing(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    runs = runs_payload(history, pipelines=1, days=1, seed=2)
    for run in runs:
        run["pipeline_id"], run["run_id"] = "young", "young-" + run["run_id"]
    stored = await client.post(
        f"{BASE}/runs", params={"project_id": history}, json={"runs": runs}, headers=auth
    )
    assert stored.status_code == 202, stored.text
    for path in ("failure/young", "resources/young", "maintenance-window/young"):
        response = await client.get(f"{BASE}/{path}", params={"project_id": history}, headers=auth)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["detail"]["need"] == 3 and "more days are needed" in response.text


async def test_other_projects_see_nothing(
    client: httpx.AsyncClient, history: str, project_user: tuple[str, dict[str, str]]
) -> None:
    own_project, headers = project_user
    mine = await client.get(
        f"{BASE}/failure/pipeline-001", params={"project_id": own_project}, headers=headers
    )
    assert mine.status_code == 404
    theirs = await client.get(f"{BASE}/failure/pipeline-001", params={"project_id": history}, headers=headers)
    assert theirs.status_code == 404


async def test_bad_runs_are_rejected_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    run = runs_payload(history, pipelines=1, days=1, seed=1)[0]
    run["duration_seconds"] = -1
    response = await client.post(
        f"{BASE}/runs", params={"project_id": history}, json={"runs": [run]}, headers=auth
    )
    assert response.status_code == 422 and "runs[0].duration_seconds" in response.text


async def test_same_run_twice_is_one_row_and_the_bus_feeds_the_store(
    client: httpx.AsyncClient, auth: dict[str, str], history: str, runtime: Runtime
) -> None:
    pipeline = f"dup-{uuid.uuid4().hex[:6]}"
    runs = runs_payload(history, pipelines=1, days=1, seed=3)[:3]
    for run in runs:
        run["pipeline_id"] = pipeline
    for _ in range(2):
        response = await client.post(
            f"{BASE}/runs", params={"project_id": history}, json={"runs": runs}, headers=auth
        )
        assert response.status_code == 202
    event = PipelineRunMetrics(project_id=history, **{**runs[0], "run_id": "from-bus"})
    await publish_event(runtime.broker, event)
    await publish_event(runtime.broker, event)  # redelivery: still one row
    store = get_service(runtime).store
    since = datetime.now(UTC) - timedelta(days=3)

    async def stored() -> bool:
        frame = await store.pipeline_runs(history, pipeline, since)
        return len(frame) == 4 and "from-bus" in set(frame["run_id"])

    await eventually(stored)


async def test_alert_once_per_episode(runtime: Runtime, history: str) -> None:
    service = get_service(runtime)
    original = service.config
    try:
        service.config = original.model_copy(update={"alert_threshold": 0.0})
        first = await service.evaluate_alerts(history, "pipeline-004")
        again = await service.evaluate_alerts(history, "pipeline-004")
        service.config = original.model_copy(update={"alert_threshold": 1.0, "alert_clear_margin": 0.0})
        closed = await service.evaluate_alerts(history, "pipeline-004")
        service.config = original.model_copy(update={"alert_threshold": 0.0})
        reopened = await service.evaluate_alerts(history, "pipeline-004")
    finally:
        service.config = original
    assert first is not None and again is None and closed is None and reopened is not None
    alerts = await read_topic(
        runtime.settings.resolved_kafka_servers,
        Topic.MAINTENANCE_ALERTS,
        lambda value: json.loads(value).get("project_id") == history,
        count=2,
    )
    assert len(alerts) == 2
