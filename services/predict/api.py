"""Predict routes under /api/v1/advanced/predict."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from aietl.services.gateway.deps import PrincipalDep, ProjectDep, RuntimeDep
from aietl.services.predict.domain.window import Blackout, NoAllowedWindow, parse_blackout
from aietl.services.predict.service import PredictService, service_of
from aietl.shared.errors import Invalid, pointer
from aietl.shared.events import PipelineRunMetrics

router = APIRouter(prefix="/advanced/predict", tags=["predict"])

ResourceType = Literal["cpu", "memory", "disk", "network"]
MAX_BULK_RUNS = 10_000


class BulkRuns(BaseModel):
    runs: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BULK_RUNS,
        description="Runs as in the `metrics.ingested` contract, without project_id (taken from the query).",
    )


class Ingested(BaseModel):
    project_id: str
    stored: int


def _service(runtime: RuntimeDep) -> PredictService:
    return service_of(runtime)


def _horizon(service: PredictService, asked: int | None, name: str) -> int:
    """PREDICTION_HORIZON_DAYS sets the default and the longest horizon."""
    longest = service.max_horizon_hours
    if asked is not None and asked > longest:
        raise Invalid(
            f"{name}: at most {longest} hours (PREDICTION_HORIZON_DAYS="
            f"{service.settings.prediction_horizon_days})",
            at=f"/query/{name}",
        )
    return longest if asked is None else asked


@router.post("/runs", response_model=Ingested, status_code=status.HTTP_202_ACCEPTED)
async def ingest_runs(body: BulkRuns, project_id: ProjectDep, runtime: RuntimeDep) -> Ingested:
    """Bulk ingest of run metrics (one batched insert; a run id sent again replaces its row)."""
    # Validating 10,000 runs takes a CPU-bound fifth of a second: not on the event loop.
    events = await asyncio.to_thread(_run_events, body.runs, project_id)
    stored = await _service(runtime).ingest(events)
    return Ingested(project_id=project_id, stored=stored)


def _run_events(runs: list[dict[str, Any]], project_id: str) -> list[PipelineRunMetrics]:
    """The runs as `metrics.ingested` events of the project in scope; a 422 names the first bad field."""
    events = []
    for index, run in enumerate(runs):
        if "project_id" in run and run["project_id"] != project_id:
            raise Invalid(
                f"runs[{index}].project_id differs from the project in scope",
                at=f"/body/runs/{index}/project_id",
            )
        try:
            events.append(PipelineRunMetrics.model_validate({**run, "project_id": project_id}))
        except ValidationError as error:
            first = error.errors(include_input=False, include_url=False)[0]
            field = ".".join(str(part) for part in first["loc"])
            raise Invalid(
                f"runs[{index}].{field}: {first['msg']}", at=pointer("body", "runs", index, *first["loc"])
            ) from None
    return events


@router.get(
    "/failure/{pipeline_id}",
    responses={
        409: {"description": "Not enough history yet (the detail says so, the context how much more)"}
    },
)
async def failure(
    pipeline_id: str,
    project_id: ProjectDep,
    runtime: RuntimeDep,
    horizon_hours: Annotated[
        int | None, Query(ge=1, description="Default and maximum: PREDICTION_HORIZON_DAYS x 24")
    ] = None,
) -> dict[str, Any]:
    """Probability that the pipeline fails within the horizon, with the factors behind it.

    Answered from the latest trained model (milliseconds); 409 while no model is trained yet,
    saying why and when one is expected.
    """
    service = _service(runtime)
    horizon = _horizon(service, horizon_hours, "horizon_hours")
    result: dict[str, Any] = await service.failure(project_id, pipeline_id, float(horizon))
    return result


@router.get("/models")
async def models(
    _principal: PrincipalDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Failure model versions, newest first: status, training window, data hash and validation metrics.

    Models learn across projects; a version shows aggregate figures only, never anyone's runs.
    """
    return {"versions": await _service(runtime).model_versions(limit)}


@router.get(
    "/resources/{pipeline_id}",
    responses={
        409: {"description": "Not enough history yet (the detail says so, the context how much more)"}
    },
)
async def resources(
    pipeline_id: str,
    project_id: ProjectDep,
    runtime: RuntimeDep,
    resource_type: ResourceType = "cpu",
    forecast_hours: Annotated[
        int | None, Query(ge=1, description="Default and maximum: PREDICTION_HORIZON_DAYS x 24")
    ] = None,
    capacity: Annotated[float | None, Query(gt=0, description="Overrides the stored limit")] = None,
) -> dict[str, Any]:
    """Hourly forecast with an 80% interval, the predicted peak and the chance of exceeding capacity."""
    service = _service(runtime)
    forecast_hours = _horizon(service, forecast_hours, "forecast_hours")
    body, _, _ = await service.resource_forecast(
        project_id, pipeline_id, resource_type, forecast_hours, capacity
    )
    body["plot_url"] = (
        f"/api/v1/advanced/predict/resources/{pipeline_id}/plot.png?project_id={project_id}"
        f"&resource_type={resource_type}&forecast_hours={forecast_hours}"
    )
    return dict(body)


@router.get(
    "/resources/{pipeline_id}/plot.png",
    response_class=Response,
    responses={
        409: {"description": "Not enough history yet (the detail says so, the context how much more)"}
    },
)
async def resources_plot(
    pipeline_id: str,
    project_id: ProjectDep,
    runtime: RuntimeDep,
    resource_type: ResourceType = "cpu",
    forecast_hours: Annotated[int | None, Query(ge=1)] = None,
    capacity: Annotated[float | None, Query(gt=0)] = None,
) -> Response:
    """History, forecast and interval as a PNG image."""
    service = _service(runtime)
    forecast_hours = _horizon(service, forecast_hours, "forecast_hours")
    image = await service.resource_plot(project_id, pipeline_id, resource_type, forecast_hours, capacity)
    return Response(content=image, media_type="image/png")


@router.get(
    "/costs",
    responses={
        409: {"description": "Not enough history yet (the detail says so, the context how much more)"}
    },
)
async def costs(project_id: ProjectDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Current daily cost, next-30-day prediction, anomalous days and estimated savings."""
    result: dict[str, Any] = await _service(runtime).costs(project_id)
    return result


@router.get(
    "/maintenance-window/{pipeline_id}",
    responses={
        409: {"description": "Not enough history yet (the detail says so, the context how much more)"}
    },
)
async def maintenance_window(
    pipeline_id: str,
    project_id: ProjectDep,
    runtime: RuntimeDep,
    duration_hours: Annotated[int, Query(ge=1, le=24)] = 2,
    blackout: Annotated[
        list[str] | None, Query(description="Repeatable, UTC, e.g. 'Mon 08:00-Fri 18:00'")
    ] = None,
) -> dict[str, Any]:
    """The hour-of-week window with the least expected impact, outside the blackouts."""
    try:
        blackouts: list[Blackout] = [parse_blackout(text) for text in blackout or []]
    except ValueError as error:
        raise Invalid(f"blackout: {error}", at="/query/blackout") from None
    try:
        result: dict[str, Any] = await _service(runtime).maintenance_window(
            project_id, pipeline_id, duration_hours, blackouts
        )
    except NoAllowedWindow as error:
        raise Invalid(f"blackout: {error}", at="/query/blackout") from None
    return result
