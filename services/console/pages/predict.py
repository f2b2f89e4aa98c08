"""Predictive maintenance: a risk board of pipelines by failure probability with their factors; per
pipeline, the resource forecast with its interval and capacity line and the recommended maintenance
window on a week grid; the project's cost per day with anomalies marked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from aietl.services.console import charts
from aietl.services.console.pages.common import gather
from aietl.services.console.rendering import parse_time, render, required_time
from aietl.services.console.session import ConsoleDep

router = APIRouter()
API = "/api/v1/advanced/predict"
OPS = "/api/v1/ops/pipeline-runs"
MAX_BOARD = 30
RESOURCES = {"cpu": "cpu_percent", "memory": "memory_mb", "disk": "disk_mb", "network": "network_mb"}


def cost_chart(daily: list[dict[str, Any]], anomalies: list[dict[str, Any]]) -> charts.Markup:
    flagged: dict[str, list[str]] = {}
    for anomaly in anomalies:
        day = str(anomaly["date"])[:10]
        flagged.setdefault(day, []).append(
            f"{anomaly['pipeline_id']} cost {anomaly['cost_usd']:.2f} "
            f"vs {anomaly['expected_usd']:.2f} expected"
        )
    bars = [
        charts.Bar(
            label=str(d["day"])[5:10],
            value=float(d["cost_usd"]),
            flagged=str(d["day"])[:10] in flagged,
            note="; ".join(flagged.get(str(d["day"])[:10], [])),
        )
        for d in daily
    ]
    return charts.bar_chart("Cost per day (USD), anomalies marked", "USD", bars)


@router.get("/predict")
async def board(console: ConsoleDep) -> Response:
    project = console.project
    answers = await gather(
        summary=console.api.get(OPS, project_id=project, days=30),
        costs=console.api.get(f"{API}/costs", project_id=project),
    )
    pipelines = (answers["summary"].value or {}).get("pipelines", [])[:MAX_BOARD]
    risks = await gather(
        **{
            p["pipeline_id"]: console.api.get(
                f"{API}/failure/{p['pipeline_id']}", project_id=project, horizon_hours=24
            )
            for p in pipelines
        }
    )
    board = sorted(
        ((p, risks[p["pipeline_id"]]) for p in pipelines),
        key=lambda pair: -(pair[1].value["failure_probability"] if pair[1].value else -1.0),
    )
    costs = answers["costs"]
    daily = (answers["summary"].value or {}).get("daily_costs", [])
    anomalies = costs.value["anomalies"] if costs.value else []
    return render(
        console,
        "predict.html",
        page="predict",
        title="Predictive maintenance",
        answers=answers,
        board=board,
        costs=costs,
        cost_chart=cost_chart(daily, anomalies) if daily else None,
        daily=daily,
        anomalies=anomalies,
    )


def hourly(points: list[dict[str, Any]], field: str) -> list[tuple[datetime, float]]:
    """Hourly means of a run field (the forecast models the same hourly series)."""
    sums: dict[datetime, list[float]] = {}
    for point in points:
        value = point.get(field)
        moment = parse_time(point["started_at"])
        if value is None or moment is None:
            continue
        sums.setdefault(moment.replace(minute=0, second=0, microsecond=0), []).append(float(value))
    return [(hour, sum(values) / len(values)) for hour, values in sorted(sums.items())]


@router.get("/predict/pipeline/{pipeline_id}")
async def pipeline(
    console: ConsoleDep, pipeline_id: str, resource: str = "memory", duration: int = 2
) -> Response:
    project = console.project
    resource = resource if resource in RESOURCES else "memory"
    duration = min(max(duration, 1), 24)
    profile = await console.api.get(f"{OPS}/{pipeline_id}", project_id=project, days=30)
    answers = await gather(
        failure=console.api.get(f"{API}/failure/{pipeline_id}", project_id=project, horizon_hours=24),
        forecast=console.api.get(
            f"{API}/resources/{pipeline_id}", project_id=project, resource_type=resource, forecast_hours=48
        ),
        window=console.api.get(
            f"{API}/maintenance-window/{pipeline_id}", project_id=project, duration_hours=duration
        ),
    )
    forecast, window = answers["forecast"], answers["window"]
    chart = None
    if forecast.value:
        body = forecast.value
        points = [
            charts.ForecastPoint(required_time(p["time"]), p["mean"], p["lower"], p["upper"])
            for p in body["forecast"]
        ]
        history = hourly(profile["recent"], RESOURCES[resource])[-24 * 7 :]
        chart = charts.forecast_chart(
            f"{resource} of {pipeline_id}: history and {len(points)}-hour forecast",
            body["unit"],
            history,
            points,
            body["capacity"],
        )
    grid = None
    if window.value:
        start = int(window.value["start_hour_of_week"])
        chosen = {(start + h) % 168 for h in range(int(window.value["duration_hours"]))}
        grid = charts.week_grid(
            f"Expected maintenance impact per hour of the week, window {window.value['window']}",
            profile["impact"],
            chosen,
        )
    return render(
        console,
        "predict_pipeline.html",
        page="predict",
        title=f"Pipeline {pipeline_id}",
        pipeline_id=pipeline_id,
        profile=profile,
        failure=answers["failure"],
        forecast=forecast,
        window=window,
        chart=chart,
        grid=grid,
        resource=resource,
        resources=list(RESOURCES),
        duration=duration,
    )
