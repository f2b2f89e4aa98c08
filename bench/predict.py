"""Predict figures on an embedded platform (`aietl up` in a subprocess), over HTTP.

At scale 1 (`AIETL_BENCH_SCALE`, default 1; 0.1 is a smoke run): 60 simulated pipelines, 22 days of
runs (about 30,000), bulk-ingested over REST. Then:

- training: the predict worker's trainer picks the history up in the background (10 s after the
  last run arrived) and trains in its own process; the figure is the version's training time, and `/health`
  is polled all along to show the event loop (shared with the gateway) is never blocked;
- failure questions: the first question per pipeline (reads the pipeline's history from chDB and
  computes its features), then warm questions (the model in memory, the pipeline's features
  cached until it gets a new run), p50 / p99 over HTTP with a keep-alive client;
- a warm resource forecast per series, in-process (the compute behind `GET /resources`).

The machine may be shared: the 1-minute load average is reported beside the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from services.predict.domain.forecast import forecast
from services.predict.simulator import simulate
from shared.embedded_broker import free_port

SCALE = float(os.environ.get("AIETL_BENCH_SCALE", "1"))
PIPELINES = max(6, round(60 * SCALE))
DAYS = 22
WARM_ROUNDS = max(3, round(10 * SCALE))
PASSWORD = "bench-password-1"  # noqa: S105 - the throwaway platform's admin
PROJECT = "bench"
BASE = "/api/v1/advanced/predict"
TRAINING_TIMEOUT_SECONDS = 1_800


def _percentiles(samples: list[float], prefix: str) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        f"{prefix}_p50_ms": round(1000 * statistics.median(ordered), 2),
        f"{prefix}_p99_ms": round(1000 * ordered[max(0, int(0.99 * len(ordered)) - 1)], 2),
        f"{prefix}_count": len(ordered),
    }


def _start_platform(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env |= {"AIETL_ADMIN_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "services.cli", "up", "--data-dir", folder]
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [*command, "--port", str(port), "--broker-port", str(broker_port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() - started > 180:
            process.terminate()
            raise RuntimeError("aietl up did not become ready")
        time.sleep(0.2)


def _ingest(http: httpx.Client) -> int:
    runs = simulate(project_id=PROJECT, pipelines=PIPELINES, days=DAYS, seed=7, start=_start()).runs
    payload = json.loads(runs.drop(columns=["project_id"]).to_json(orient="records", date_format="iso"))
    for offset in range(0, len(payload), 10_000):
        response = http.post(
            f"{BASE}/runs", params={"project_id": PROJECT}, json={"runs": payload[offset : offset + 10_000]}
        )
        response.raise_for_status()
    return len(payload)


def _start() -> Any:
    import pandas as pd

    return (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=DAYS)).floor("h").to_pydatetime()


def _await_model(http: httpx.Client, url: str, runs: int) -> dict[str, Any]:
    """Wait for a version trained on the whole history, polling /health on its own connection all
    along (the event loop's latency while the trainer works)."""
    health: list[float] = []
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as probe:
        while time.monotonic() - started < TRAINING_TIMEOUT_SECONDS:
            began = time.perf_counter()
            probe.get("/health").raise_for_status()
            health.append(time.perf_counter() - began)
            versions = http.get(f"{BASE}/models").json()["versions"]
            for version in versions:
                whole = version["status"] == "ready" and version["training_runs"] >= runs
                if whole or version["status"] in ("refused", "failed"):
                    return {"version": version, "health": health, "wall_seconds": time.monotonic() - started}
            time.sleep(0.05)
    raise RuntimeError("no model version within the timeout")


def _questions(http: httpx.Client) -> dict[str, Any]:
    pipelines = [f"pipeline-{index:03d}" for index in range(PIPELINES)]
    params = {"project_id": PROJECT, "horizon_hours": 24}
    first, warm, statuses = [], [], set()
    for pipeline in pipelines:
        began = time.perf_counter()
        statuses.add(http.get(f"{BASE}/failure/{pipeline}", params=params).status_code)
        first.append(time.perf_counter() - began)
    for _ in range(WARM_ROUNDS):
        for pipeline in pipelines:
            began = time.perf_counter()
            statuses.add(http.get(f"{BASE}/failure/{pipeline}", params=params).status_code)
            warm.append(time.perf_counter() - began)
    return {
        **_percentiles(first, "failure_first_question"),
        **_percentiles(warm, "failure_warm_question"),
        "failure_question_statuses": sorted(statuses),
        "failure_warm_goal_p99_ms": 20,
    }


def _forecasts() -> dict[str, Any]:
    runs = simulate(pipelines=4, days=35, seed=7).runs
    series = [
        group.set_index("started_at")[column].astype(float).resample("h").mean().interpolate().to_numpy()
        for _, group in runs.groupby("pipeline_id")
        for column in ("cpu_percent", "memory_mb", "disk_mb", "network_mb")
    ]
    forecast(series[0], 48, seasons=(24, 168))  # warm, as a worker that has served one
    wall = []
    for values in series:
        began = time.perf_counter()
        forecast(values, 48, seasons=(24, 168))
        wall.append(time.perf_counter() - began)
    return _percentiles(wall, "forecast_warm_in_process")


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        process, url = _start_platform(folder)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                token = http.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
                http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                http.post("/api/v1/projects", json={"id": PROJECT, "name": PROJECT}).raise_for_status()
                began = time.perf_counter()
                stored = _ingest(http)
                ingest_seconds = time.perf_counter() - began
                trained = _await_model(http, url, stored)
                version = trained["version"]
                figures: dict[str, Any] = {
                    "scale": SCALE,
                    "pipelines": PIPELINES,
                    "runs": stored,
                    "bulk_ingest_seconds": round(ingest_seconds, 2),
                    "model_status": version["status"],
                    "training_seconds": version["training_seconds"],
                    "training_horizons_hours": version["horizons_hours"],
                    "training_validation_24h": {
                        k: version["validation"].get("24h", {}).get(k)
                        for k in ("roc_auc", "pr_auc", "recall_at_5pct_fpr")
                    },
                    "model_bytes": version["model_bytes"],
                    "ingest_to_model_seconds": round(trained["wall_seconds"], 1),
                    **{
                        k.replace("_ms", "_ms_during_training"): v
                        for k, v in _percentiles(trained["health"], "health").items()
                    },
                    "health_max_ms_during_training": round(1000 * max(trained["health"]), 2),
                    **_questions(http),
                }
        finally:
            process.terminate()
            try:
                process.wait(60)
                clean_stop = True
            except subprocess.TimeoutExpired:
                process.kill()
                clean_stop = False
    figures["stopped_within_60_s_of_sigterm"] = clean_stop
    figures |= _forecasts()
    figures["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)  # the machine is shared
    figures["cpu_count"] = os.cpu_count()
    return figures
