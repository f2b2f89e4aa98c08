"""Feature store routes under /api/v1/advanced/features (project from `?project_id=`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from aietl.services.features import registry
from aietl.services.features.component import service_of
from aietl.services.features.domain import FeatureType, StorageType, UnknownFeature
from aietl.services.features.on_demand import MAX_TEXT_LENGTH
from aietl.services.features.service import ValueIn
from aietl.services.features.tables import FeatureVersion, FeatureView
from aietl.services.gateway.deps import ProjectDep, ProjectReadDep, RuntimeDep, SessionDep
from aietl.services.gateway.fast_path import FastRoute
from aietl.services.runtime import Runtime
from aietl.shared.errors import Invalid
from aietl.shared.events.features import FeatureData

router = APIRouter(prefix="/advanced/features", tags=["features"])
Name = Annotated[str, Field(min_length=1, max_length=128)]
MAX_ENTITIES = 10_000
MAX_FEATURES = 1_000
MAX_REQUEST_KEYS = 256
MAX_REQUEST_LIST = 4_096


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureRegistration(Body):
    name: Name
    feature_type: FeatureType
    entity: Name
    description: str = ""
    source: str = Field(
        default="", max_length=255, description="Table, topic or pipeline output it comes from."
    )
    storage_type: StorageType = "both"
    ttl_seconds: int | None = Field(default=None, ge=1, description="Defaults to FEATURE_STORE_TTL_SECONDS.")
    feature_view: Name | None = Field(default=None, description="Defaults to the entity's name.")
    pipeline_id: str | None = Field(default=None, max_length=255)


class ViewFeature(Body):
    name: Name
    feature_type: FeatureType
    description: str = ""


class ViewRegistration(Body):
    name: Name
    entity: Name
    features: list[ViewFeature] = Field(min_length=1, max_length=MAX_FEATURES)
    ttl_seconds: int | None = Field(default=None, ge=1)
    source: str = Field(default="", max_length=255)
    pipeline_id: str | None = Field(default=None, max_length=255)
    storage_type: StorageType = "both"
    owner: str = Field(default="", max_length=255)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class OnDemandOutput(Body):
    feature_type: FeatureType
    expression: str | None = Field(default=None, max_length=2_000)


class OnDemandRegistration(Body):
    name: Name
    inputs: list[Name] = Field(default_factory=list, max_length=MAX_FEATURES)
    request_schema: dict[str, FeatureType] = Field(default_factory=dict)
    outputs: dict[str, OnDemandOutput] = Field(min_length=1)
    transform: str | None = Field(default=None, description="Name of a Python transform registered in code.")
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class WriteValue(Body):
    feature_name: Name
    entity_id: Annotated[str, Field(min_length=1, max_length=255)]
    value: FeatureData
    timestamp: AwareDatetime


class WriteRequest(Body):
    features: list[WriteValue] = Field(min_length=1, max_length=50_000)
    storage: StorageType = "both"


# Request data feeds on-demand expressions once per entity: values are flat and bounded.
RequestText = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
RequestValue = (
    bool
    | int
    | float
    | RequestText
    | None
    | Annotated[list[float] | list[int] | list[RequestText], Field(max_length=MAX_REQUEST_LIST)]
)


class OnlineRequest(Body):
    feature_names: list[Name] = Field(min_length=1, max_length=MAX_FEATURES)
    entity_ids: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        min_length=1, max_length=MAX_ENTITIES
    )
    request_data: dict[Name, RequestValue] = Field(
        default_factory=dict, max_length=MAX_REQUEST_KEYS, description="Inputs of on-demand features."
    )


class EntityRow(Body):
    entity_id: Annotated[str, Field(min_length=1, max_length=255)]
    timestamp: AwareDatetime


class HistoricalRequest(Body):
    feature_names: list[Name] = Field(min_length=1, max_length=MAX_FEATURES)
    entity_rows: list[EntityRow] = Field(min_length=1, max_length=100_000)


class MaterializeRequest(Body):
    feature_view: Name
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    incremental: bool = Field(default=False, description="From where the last incremental run stopped.")


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


def _feature_out(row: FeatureVersion) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "reference": f"{row.name}@v{row.version}",
        "feature_type": row.feature_type,
        "entity": row.entity,
        "feature_view": row.view,
        "source": row.source,
        "pipeline_id": row.pipeline_id,
        "storage_type": row.storage_type,
        "ttl_seconds": row.ttl_seconds,
        "description": row.description,
        "created_at": row.created_at.isoformat(),
    }


def _view_out(view: FeatureView, features: list[FeatureVersion]) -> dict[str, Any]:
    return {
        "name": view.name,
        "kind": view.kind,
        "entity": view.entity,
        "source": view.source,
        "pipeline_id": view.pipeline_id,
        "ttl_seconds": view.ttl_seconds if view.kind == "batch" else None,
        "owner": view.owner,
        "tags": view.tags,
        "description": view.description,
        "features": [f"{row.name}@v{row.version}" for row in features]
        if view.kind == "batch"
        else list(view.outputs),
        "inputs": view.inputs,
        "request_schema": view.request_schema,
        "outputs": view.outputs,
        "transform": view.transform,
    }


@router.post("/register", status_code=201)
async def register_feature(
    body: FeatureRegistration, project_id: ProjectDep, runtime: RuntimeDep
) -> Response:
    """Register one feature (seed shape); a changed definition makes a new version."""
    definition = registry.FeatureDefinition(
        name=body.name,
        feature_type=body.feature_type,
        entity=body.entity,
        ttl_seconds=body.ttl_seconds or runtime.settings.feature_store_ttl_seconds,
        storage_type=body.storage_type,
        view=body.feature_view,
        source=body.source,
        pipeline_id=body.pipeline_id,
        description=body.description,
    )
    row, created = await service_of(runtime).register_feature(project_id, definition)
    return _json({**_feature_out(row), "created": created}, 201)


@router.post("/feature-views", status_code=201)
async def register_view(body: ViewRegistration, project_id: ProjectDep, runtime: RuntimeDep) -> Response:
    definition = registry.ViewDefinition(
        name=body.name,
        entity=body.entity,
        ttl_seconds=body.ttl_seconds or runtime.settings.feature_store_ttl_seconds,
        features=[(f.name, f.feature_type, f.description) for f in body.features],
        source=body.source,
        pipeline_id=body.pipeline_id,
        storage_type=body.storage_type,
        owner=body.owner,
        tags=body.tags,
        description=body.description,
    )
    view, rows = await service_of(runtime).register_view(project_id, definition)
    return _json(_view_out(view, rows), 201)


@router.post("/on-demand-views", status_code=201)
async def register_on_demand(
    body: OnDemandRegistration, project_id: ProjectDep, runtime: RuntimeDep
) -> Response:
    definition = registry.OnDemandDefinition(
        name=body.name,
        inputs=body.inputs,
        outputs={name: output.feature_type for name, output in body.outputs.items()},
        expressions={name: o.expression for name, o in body.outputs.items() if o.expression is not None},
        transform=body.transform,
        request_schema=body.request_schema,
        owner=body.owner,
        tags=body.tags,
        description=body.description,
    )
    view = await service_of(runtime).register_on_demand(project_id, definition)
    return _json(_view_out(view, []), 201)


@router.get("/features")
async def list_features(project_id: ProjectDep, session: SessionDep) -> Response:
    """Latest version of every stored feature."""
    return _json({"features": [_feature_out(row) for row in await registry.features(session, project_id)]})


@router.get("/features/{name}")
async def describe_feature(name: str, project_id: ProjectDep, session: SessionDep) -> Response:
    """Every version, and lineage: the source/pipeline producing it and the on-demand views reading it."""
    rows = await registry.versions(session, project_id, name)
    if not rows:
        raise UnknownFeature(f"unknown feature {name!r}")
    latest = rows[-1]
    return _json(
        {
            **_feature_out(latest),
            "versions": [_feature_out(row) for row in rows],
            "lineage": {
                "source": latest.source,
                "pipeline_id": latest.pipeline_id,
                "feature_view": latest.view,
                "read_by_on_demand_views": await registry.consumers_of(session, project_id, name),
            },
        }
    )


@router.get("/feature-views")
async def list_views(project_id: ProjectDep, session: SessionDep) -> Response:
    features = await registry.features(session, project_id)
    return _json(
        {
            "feature_views": [
                _view_out(view, [row for row in features if row.view == view.name])
                for view in await registry.views(session, project_id)
            ]
        }
    )


@router.get("/feature-views/{name}")
async def describe_view(name: str, project_id: ProjectDep, session: SessionDep) -> Response:
    view = await registry.view(session, project_id, name)
    if view is None:
        raise UnknownFeature(f"unknown feature view {name!r}")
    return _json(_view_out(view, await registry.view_features(session, project_id, name)))


@router.post("/write")
async def write(body: WriteRequest, project_id: ProjectDep, runtime: RuntimeDep) -> Response:
    """Write values to online, offline or both; the same value written twice changes nothing."""
    values = [ValueIn(v.feature_name, v.entity_id, v.value, v.timestamp) for v in body.features]
    result = await service_of(runtime).write(project_id, values, body.storage)
    return _json({"written": {"online": result.online, "offline": result.offline}})


async def _online_vectors(runtime: Runtime, project_id: str, body: OnlineRequest) -> Response:
    vectors = await service_of(runtime).get_online(
        project_id, body.feature_names, body.entity_ids, body.request_data
    )
    return _json({"feature_vectors": vectors})


@router.post("/get-online")
async def get_online(body: OnlineRequest, project_id: ProjectReadDep, runtime: RuntimeDep) -> Response:
    """Online serving; also answered ahead of the router (`fast_routes`), with this same code."""
    return await _online_vectors(runtime, project_id, body)


fast_routes = {"/get-online": FastRoute(OnlineRequest, _online_vectors)}


@router.post("/historical")
async def historical(body: HistoricalRequest, project_id: ProjectReadDep, runtime: RuntimeDep) -> Response:
    """Point-in-time correct values for training: latest at or before each row's time, within TTL."""
    rows = await service_of(runtime).historical(
        project_id, body.feature_names, [(row.entity_id, row.timestamp) for row in body.entity_rows]
    )
    return _json(
        {
            "rows": [
                {
                    "entity_id": entity.entity_id,
                    "timestamp": entity.timestamp,
                    "features": dict(zip(body.feature_names, values, strict=True)),
                }
                for entity, values in zip(body.entity_rows, rows, strict=True)
            ]
        }
    )


@router.post("/materialize")
async def materialize(body: MaterializeRequest, project_id: ProjectDep, runtime: RuntimeDep) -> Response:
    """Offline → online: a time range [start, end), or incrementally from where the last run stopped."""
    store = service_of(runtime)
    if body.incremental:
        if body.start or body.end:
            raise Invalid("incremental takes no start/end", at="/body/incremental")
        count, low, high = await store.materialize_incremental(project_id, body.feature_view)
        return _json({"materialized": count, "written_after_us": low, "written_until_us": high})
    if body.start is None or body.end is None:
        raise Invalid("start and end are required", at="/body/start" if body.start is None else "/body/end")
    count = await store.materialize(project_id, body.feature_view, body.start, body.end)
    return _json({"materialized": count, "start": body.start, "end": body.end})
