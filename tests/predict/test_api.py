"""Predict end to end in one process: runs in over REST and the bus, predictions out over REST."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from aietl.services.gateway.admin import ensure_bootstrap_admin
from aietl.services.gateway.app import create_app
from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.service import PredictService, service_of
from aietl.services.predict.simulator import simulate
from aietl.services.predict.tables import AlertEpisode, PredictionOutcome
from aietl.services.predict.trainer import get_trainer
from aietl.services.runtime import Runtime
from aietl.shared.bus import publish_event
from aietl.shared.events import PipelineRunMetrics, Topic
from aietl.shared.migrate import upgrade_async
from aietl.shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.support import eventually, read_topic

BASE = "/api/v1/advanced/predict"
SPEC_FACTOR_FIELDS = {"factor", "current_value", "threshold", "severity"}


def runs_payload(
    project: str, *, pipelines: int, days: int, seed: int, ago_days: float = 0
) -> list[dict[str, Any]]:
    """Simulated hourly runs ending `ago_days` before now, as the bulk REST ingest takes them."""
    end = datetime.now(UTC) - timedelta(days=ago_days)
    start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    runs = simulate(project_id=project, pipelines=pipelines, days=days, seed=seed, start=start).runs
    runs = runs.drop(columns=["project_id"])
    return json.loads(runs.to_json(orient="records", date_format="iso"))


async def ingest(
    client: httpx.AsyncClient, headers: dict[str, str], project: str, runs: list[dict[str, Any]]
) -> None:
    response = await client.post(
        f"{BASE}/runs", params={"project_id": project}, json={"runs": runs}, headers=headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["stored"] == len(runs)


@pytest.fixture(scope="module")
async def history(client: httpx.AsyncClient, auth: dict[str, str], runtime: Runtime) -> str:
    """A project with 6 simulated pipelines and 15 days of hourly runs, ingested in bulk, and a
    model version trained on it by the worker's trainer (in its training process)."""
    project = f"pred-{uuid.uuid4().hex[:8]}"
    created = await client.post("/api/v1/projects", json={"id": project, "name": project}, headers=auth)
    assert created.status_code == 201, created.text
    await ingest(client, auth, project, runs_payload(project, pipelines=6, days=15, seed=5))
    version = await get_trainer(runtime).train()
    models = await client.get(f"{BASE}/models", headers=auth)
    assert any(v["version"] == version and v["status"] == "ready" for v in models.json()["versions"]), (
        models.text
    )
    return project


async def test_failure_prediction_explains_itself_in_the_specifications_words(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    response = await client.get(
        f"{BASE}/failure/pipeline-001", params={"project_id": history, "horizon_hours": 24}, headers=auth
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    prediction = body["prediction"]
    assert prediction["type"] == "failure"
    assert prediction["confidence_score"] == body["failure_probability"]
    assert 0 < body["failure_probability"] < 1
    assert prediction["severity"] in ("low", "medium", "high", "critical")
    assert "probability in next 24h" in prediction["description"]
    assert prediction["recommended_actions"] and all(
        a.isidentifier() for a in prediction["recommended_actions"]
    )
    assert prediction["prevention_window_hours"] >= 0
    for spec_factor, factor in zip(
        prediction["contributing_factors"], body["contributing_factors"], strict=True
    ):
        assert spec_factor.keys() == SPEC_FACTOR_FIELDS
        assert factor["contribution"] >= 0.01 and "usual_value" in factor
    assert body["model"]["version"] >= 1 and body["model"]["validation"]["roc_auc"] is not None


async def test_a_warm_question_is_answered_in_milliseconds(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    params: dict[str, str | int] = {"project_id": history, "horizon_hours": 24}
    await client.get(f"{BASE}/failure/pipeline-002", params=params, headers=auth)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        response = await client.get(f"{BASE}/failure/pipeline-002", params=params, headers=auth)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert sorted(timings)[len(timings) // 2] < 0.1, timings  # no training, no history re-read


async def test_models_lists_versions_with_time_ordered_validation(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    response = await client.get(f"{BASE}/models", headers=auth)
    assert response.status_code == 200, response.text
    ready = next(v for v in response.json()["versions"] if v["status"] == "ready")
    assert ready["data_hash"] and len(ready["data_hash"]) == 64 and ready["model_bytes"] > 0
    assert ready["training_seconds"] > 0 and ready["training_cpu_seconds"] > 0
    assert ready["training_window"]["start"] < ready["training_window"]["end"]
    day = ready["validation"]["24h"]
    assert set(failure_domain.RANKING_FIGURES) <= day.keys()
    assert day["validation_from"] > ready["training_window"]["start"]
    assert (await client.get(f"{BASE}/models")).status_code == 401


async def test_another_process_serves_the_latest_version_from_the_registry(
    runtime: Runtime, history: str
) -> None:
    """A gateway on its own (no trainer) loads what the worker stored: arrays, never a pickle."""
    trained_version, trained = await service_of(runtime).current_model()
    elsewhere = PredictService(runtime)
    version, model = await elsewhere.current_model()
    assert version == trained_version and model.data_hash == trained.data_hash
    answer = await elsewhere.failure(history, "pipeline-001", 24.0)
    assert answer["model"]["version"] == version


async def test_training_runs_off_the_event_loop(
    client: httpx.AsyncClient, runtime: Runtime, history: str
) -> None:
    """`aietl up` serves HTTP in the process that trains: /health must stay fast meanwhile."""
    training = asyncio.create_task(get_trainer(runtime).train())
    slowest = 0.0
    while not training.done():
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
        await asyncio.sleep(0.05)
    await training
    assert slowest < 1.0, f"/health took {slowest:.2f} s during training"


async def test_without_a_model_the_answer_is_409_with_what_is_missing(
    runtime: Runtime, history: str, tmp_path: Path, settings: Settings
) -> None:
    """A platform whose registry is empty (its own SQLite database, the same run store)."""
    fresh = Runtime(
        settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"})
    )
    fresh.component("clickhouse", runtime.clickhouse)
    await upgrade_async(fresh.settings.resolved_database_url)
    await ensure_bootstrap_admin(fresh)
    try:
        app = create_app(fresh, owns_runtime=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fresh") as http:
            login = await http.post(
                "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            started = time.perf_counter()
            response = await http.get(
                f"{BASE}/failure/pipeline-001",
                params={"project_id": history, "horizon_hours": 24},
                headers=headers,
            )
            assert time.perf_counter() - started < 5  # never a training inside the request
            assert response.status_code == 409, response.text
            refused = response.json()
            assert refused["context"]["missing"] == "a trained failure model"
            assert refused["context"]["next_training_at"]
            assert "trains one in the background" in refused["detail"]
            assert (await http.get(f"{BASE}/models", headers=headers)).json() == {"versions": []}
    finally:
        await fresh.close()


async def test_the_specifications_examples_work_as_written(
    client: httpx.AsyncClient, history: str, project_user: tuple[str, dict[str, str]]
) -> None:
    """Section 5's four GET examples, verbatim, for a user of one project (no project_id needed)."""
    project, headers = project_user
    await ingest(client, headers, project, runs_payload(project, pipelines=2, days=6, seed=8))
    pipeline = "pipeline-000"
    examples = (
        f"/api/v1/advanced/predict/failure/{pipeline}?horizon_hours=24",
        f"/api/v1/advanced/predict/resources/{pipeline}?resource_type=cpu&forecast_hours=48",
        f"/api/v1/advanced/predict/costs?project_id={project}",
        f"/api/v1/advanced/predict/maintenance-window/{pipeline}",
    )
    bodies = []
    for example in examples:
        response = await client.get(example, headers=headers)
        assert response.status_code == 200, (example, response.text)
        bodies.append(response.json())
        assert bodies[-1]["success"] is True
    failure, resources, costs, window = bodies
    prediction = failure["prediction"]
    assert {
        "type",
        "confidence_score",
        "severity",
        "description",
        "contributing_factors",
        "recommended_actions",
        "prevention_window_hours",
    } <= prediction.keys()
    assert all(f.keys() == SPEC_FACTOR_FIELDS for f in prediction["contributing_factors"])
    assert len(resources["forecast"]) == 48 and resources["prediction"]["bottleneck_probability"] is not None
    assert resources["prediction"]["peak_prediction"][1] == resources["predicted_peak"]["value"]
    assert costs["prediction"]["type"] == "cost" and costs["current_daily_cost"] > 0
    assert {"current_daily_cost", "predicted_monthly_cost", "estimated_savings"} <= costs.keys()
    assert window["day_name"].endswith("day") and len(window["time_window"]) == len("02:00-04:00")
    assert 0 <= window["confidence"] <= 1


async def test_prediction_horizon_days_sets_the_default_and_the_maximum(
    client: httpx.AsyncClient, auth: dict[str, str], history: str, runtime: Runtime
) -> None:
    service = service_of(runtime)
    original = service.settings
    try:
        service.settings = original.model_copy(update={"prediction_horizon_days": 2})
        params = {"project_id": history}
        default = await client.get(f"{BASE}/failure/pipeline-001", params=params, headers=auth)
        assert default.status_code == 200, default.text
        assert default.json()["horizon_hours"] == 48
        too_far = await client.get(
            f"{BASE}/failure/pipeline-001", params={**params, "horizon_hours": 49}, headers=auth
        )
        assert too_far.status_code == 422 and "PREDICTION_HORIZON_DAYS=2" in too_far.text
        forecast = await client.get(f"{BASE}/resources/pipeline-001", params=params, headers=auth)
        assert forecast.status_code == 200 and len(forecast.json()["forecast"]) == 48
        longer = await client.get(
            f"{BASE}/resources/pipeline-001", params={**params, "forecast_hours": 72}, headers=auth
        )
        assert longer.status_code == 422 and "forecast_hours" in longer.text
    finally:
        service.settings = original


def test_min_historical_days_defaults_to_the_specifications_14(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIN_HISTORICAL_DAYS", raising=False)
    monkeypatch.delenv("PREDICTION_HORIZON_DAYS", raising=False)
    defaults = Settings(_env_file=None)
    assert defaults.min_historical_days == 14 and defaults.prediction_horizon_days == 7
    monkeypatch.setenv("MIN_HISTORICAL_DAYS", "3")
    assert Settings(_env_file=None).min_historical_days == 3


async def test_resource_forecast_and_plot(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    params: dict[str, str | int] = {"project_id": history, "resource_type": "memory", "forecast_hours": 36}
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
    for anomaly in body["anomalies"]:
        assert anomaly["kind"] in ("spike", "drop", "level_shift") and anomaly["scope"] in (
            "pipeline",
            "project",
        )
        assert (anomaly["pipeline_id"] is None) == (anomaly["scope"] == "project")
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
    await ingest(client, auth, history, runs)
    for path in ("failure/young", "resources/young", "maintenance-window/young"):
        response = await client.get(f"{BASE}/{path}", params={"project_id": history}, headers=auth)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["context"]["need"] == 3 and "more days are needed" in response.text


async def test_a_pipeline_with_only_old_runs_gets_one_answer_from_every_endpoint(
    client: httpx.AsyncClient, auth: dict[str, str], history: str
) -> None:
    runs = runs_payload(history, pipelines=1, days=5, seed=3, ago_days=70)  # before the 60-day window
    for run in runs:
        run["pipeline_id"], run["run_id"] = "retired", "retired-" + run["run_id"]
    await ingest(client, auth, history, runs)
    answers = set()
    for path in ("failure/retired", "resources/retired", "maintenance-window/retired"):
        response = await client.get(f"{BASE}/{path}", params={"project_id": history}, headers=auth)
        assert response.status_code == 409, (path, response.text)
        answers.add(response.json()["detail"])
    assert len(answers) == 1, answers
    assert "no runs in the last 60 days" in answers.pop()


async def test_a_run_that_ends_before_it_starts_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], history: str, runtime: Runtime
) -> None:
    run = runs_payload(history, pipelines=1, days=1, seed=1)[0]
    run["ended_at"] = (datetime.fromisoformat(run["started_at"]) - timedelta(minutes=5)).isoformat()
    response = await client.post(
        f"{BASE}/runs", params={"project_id": history}, json={"runs": [run]}, headers=auth
    )
    assert (
        response.status_code == 422
        and "runs[0].ended_at" in response.text
        and "before started_at" in response.text
    )

    marker = uuid.uuid4().hex
    on_the_bus = {**run, "project_id": history, "run_id": marker}
    await runtime.broker.publish(json.dumps(on_the_bus).encode(), Topic.METRICS_INGESTED)

    def original_has_marker(value: bytes) -> bool:  # dead letters carry the original bytes in base64
        return marker.encode() in base64.b64decode(json.loads(value)["original_value_b64"])

    letters = await read_topic(
        runtime.settings.resolved_kafka_servers, Topic.dlq(Topic.METRICS_INGESTED), original_has_marker
    )
    assert "before started_at" in json.loads(letters[0])["reason"]


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
    store = service_of(runtime).store
    since = datetime.now(UTC) - timedelta(days=3)

    async def stored() -> bool:
        frame = await store.pipeline_runs(history, pipeline, since)
        return len(frame) == 4 and "from-bus" in set(frame["run_id"])

    await eventually(stored)


async def test_alert_once_per_episode(runtime: Runtime, history: str) -> None:
    service = service_of(runtime)
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


async def test_predictions_and_alerts_are_scored_once_their_horizon_has_passed(
    runtime: Runtime, history: str
) -> None:
    """Accuracy, prevention and savings from what the runs after a prediction show."""
    service = service_of(runtime)
    since = datetime.now(UTC) - timedelta(days=30)
    for index in range(6):  # a pipeline that has failed before: a prevented failure saves its cost
        pipeline = f"pipeline-{index:03d}"
        runs = await service.store.pipeline_runs(history, pipeline, since)
        if (runs["status"] == "failed").any():
            break
    as_of = runs["started_at"].iloc[len(runs) // 2].to_pydatetime()
    window = runs[(runs["started_at"] > as_of) & (runs["started_at"] <= as_of + timedelta(hours=24))]
    failed = bool((window["status"] == "failed").any())
    await service.outcomes.record(history, pipeline, 24.0, as_of, 0.9, 0.7, 1)
    async with runtime.database.transaction() as session:
        episode = AlertEpisode(
            project_id=history,
            pipeline_id=pipeline,
            alert_type="failure_risk",
            peak_probability=0.9,
            alert={},
            published_at=datetime.now(UTC),
            as_of=as_of,
            horizon_hours=24.0,
            closed_at=datetime.now(UTC),
        )
        session.add(episode)
    outcome = "true_positive" if failed else "false_positive"
    before = REGISTRY.get_sample_value("aietl_prediction_outcomes_total", {"outcome": outcome}) or 0.0
    assert await service.outcomes.resolve(datetime.now(UTC)) >= 2
    async with runtime.database.sessions() as session:
        scored = await session.scalar(
            select(PredictionOutcome).where(
                PredictionOutcome.project_id == history, PredictionOutcome.as_of == as_of
            )
        )
        resolved_episode = await session.get(AlertEpisode, episode.id)
    assert scored is not None and scored.failed is failed and scored.predicted_failure
    assert resolved_episode is not None and resolved_episode.prevented is (not failed)
    assert resolved_episode.saving_usd is not None and (resolved_episode.saving_usd > 0) is (not failed)
    assert REGISTRY.get_sample_value("aietl_prediction_outcomes_total", {"outcome": outcome}) == before + 1
    rate = "aietl_prediction_false_positive_rate" if not failed else "aietl_prediction_false_negative_rate"
    rate_value = REGISTRY.get_sample_value(rate)
    success_rate = REGISTRY.get_sample_value("aietl_prevention_success_rate")
    assert rate_value is not None and 0 <= rate_value <= 1
    assert success_rate is not None and 0 <= success_rate <= 1
