"""Drift routes under /api/v1/advanced/schema-drift: detect, adapt, baselines, audit, policies, observe."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from aietl.services.drift import analyser, observer, plot, service, store
from aietl.services.drift.tables import Detection
from aietl.services.gateway.deps import AdminDep, PrincipalDep, ProjectDep, RuntimeDep, SessionDep
from aietl.shared.errors import Invalid, NotFound
from aietl.shared.events import SchemaObserved
from aietl.shared.events.base import Name
from aietl.shared.events.schema import Dialect, Drift, ObservedColumn, Severity, Strategy
from aietl.shared.outbound import OutboundPolicy, OutboundRefused, PathRefused, checked_database_url

router = APIRouter(prefix="/advanced/schema-drift", tags=["schema-drift"])
TableName = Annotated[str, Query(min_length=1, max_length=255)]
Limit = Annotated[int, Query(ge=1, le=1_000)]
SERIALISE_IN_THREAD = 50  # drifts in a /detect answer from which it is serialised off the event loop


# --- detect --------------------------------------------------------------------------------------


class CurrentSchema(BaseModel):
    columns: list[ObservedColumn] = Field(min_length=0, max_length=10_000)


class DetectRequest(BaseModel):
    connector_id: Name
    table_name: Name
    current_schema: CurrentSchema
    dialect: Dialect = "generic"


class DetectResponse(BaseModel):
    drifts_detected: int
    drifts: list[Drift]
    baseline_version: int
    new_version: int | None = None
    baseline_created: bool = False
    detection_id: str | None = None
    strategy: Strategy | None = None
    status: str | None = None


@router.post("/detect", response_model=DetectResponse)
async def detect(
    body: DetectRequest, project_id: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep
) -> Any:
    """Compare the schema with the table's baseline and decide by policy; the first call sets version 1."""
    seen: set[str] = set()
    for index, column in enumerate(body.current_schema.columns):
        if column.name in seen:
            raise Invalid(
                f"current_schema.columns.{index}.name: duplicate column name {column.name!r}",
                at=f"/body/current_schema/columns/{index}/name",
            )
        seen.add(column.name)
    event = SchemaObserved(
        project_id=project_id,
        connector_id=body.connector_id,
        table_name=body.table_name,
        dialect=body.dialect,
        columns=body.current_schema.columns,
        observed_by=f"user:{principal.username}",
    )
    async with runtime.database.transaction() as session:
        outcome = await service.observe(session, event, f"user:{principal.username}")
        detected = outcome.output()
        if detected is not None:  # published by the outbox relay once this commits
            runtime.outbox.enqueue(session, [detected])
    service.record_metrics(outcome)
    detection = outcome.detection
    answer = DetectResponse.model_construct(  # built from validated parts: no second validation
        drifts_detected=len(outcome.drifts),
        drifts=outcome.drifts,
        baseline_version=outcome.baseline_version,
        new_version=detection.new_version if detection else None,
        baseline_created=outcome.created_baseline,
        detection_id=detection.id if detection else None,
        strategy=detection.strategy if detection else None,
        status=detection.status if detection else None,
    )
    if len(outcome.drifts) < SERIALISE_IN_THREAD:
        return Response(answer.model_dump_json(), media_type="application/json")
    # hundreds of drifts take tens of milliseconds to serialise: not on the event loop
    return Response(await asyncio.to_thread(answer.model_dump_json), media_type="application/json")


# --- detections and decisions --------------------------------------------------------------------


class DetectionOut(BaseModel):
    id: str
    connector_id: str
    table_name: str
    observed_event_id: str
    dialect: str
    baseline_version: int
    new_version: int | None
    before_hash: str
    after_hash: str
    drifts: list[Drift]
    strategy: str
    status: str
    decided_by: str
    analysis: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Detection) -> DetectionOut:
        return cls.model_validate(row, from_attributes=True)


@router.get("/detections", response_model=list[DetectionOut])
async def detections(
    project_id: ProjectDep,
    session: SessionDep,
    connector_id: Annotated[str | None, Query(max_length=255)] = None,
    table_name: Annotated[str | None, Query(max_length=255)] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(adapted|pending|alerted|blocked|unblocked)$")
    ] = None,
    limit: Limit = 100,
) -> list[DetectionOut]:
    """Detections, newest first."""
    rows = await store.detections(session, project_id, connector_id, table_name, status_, limit)
    return [DetectionOut.of(row) for row in rows]


async def _detection(session: Any, project_id: str, detection_id: str) -> Detection:
    row = await store.detection(session, project_id, detection_id)
    if row is None:
        raise NotFound(f"detection {detection_id!r} not found")
    return row


@router.get("/detections/{detection_id}", response_model=DetectionOut)
async def detection(detection_id: str, project_id: ProjectDep, session: SessionDep) -> DetectionOut:
    return DetectionOut.of(await _detection(session, project_id, detection_id))


class AdaptRequest(BaseModel):
    strategy: Strategy = "auto_adapt"
    drift_indexes: list[int] | None = Field(
        default=None, max_length=10_000, description="Which drifts (by position); all when omitted."
    )


@router.post(
    "/detections/{detection_id}/adapt",
    response_model=DetectionOut,
    responses={409: {"description": "The detection was already decided"}},
)
async def adapt(
    detection_id: str,
    body: AdaptRequest,
    project_id: ProjectDep,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> DetectionOut:
    """Decide on a detection: `auto_adapt` accepts the (chosen) drifts into a new baseline version and
    unblocks the source; `fail` blocks it; `suggest` and `alert` record the decision."""
    async with runtime.database.transaction() as session:
        row, accepted = await service.adapt(
            session,
            project_id,
            detection_id,
            body.strategy,
            body.drift_indexes,
            f"user:{principal.username}",
        )
        if accepted is not None:  # published by the outbox relay once this commits
            runtime.outbox.enqueue(session, [accepted])
    service.record_decision(row, body.strategy)
    return DetectionOut.of(row)


@router.post(
    "/detections/{detection_id}/analyse",
    response_model=DetectionOut,
    responses={503: {"description": "No LLM endpoint is configured, or it does not answer"}},
)
async def analyse(detection_id: str, project_id: ProjectDep, runtime: RuntimeDep) -> DetectionOut:
    """Ask the configured LLM for a review of the detection (503 when no endpoint is configured)."""
    async with runtime.database.sessions() as session:
        row = await _detection(session, project_id, detection_id)
        baseline = next(
            v
            for v in await store.versions(session, project_id, row.connector_id, row.table_name)
            if v.version == row.baseline_version
        )
    text = await analyser.analyse(runtime.settings, baseline.columns, row.observed_columns, row.drifts)
    async with runtime.database.transaction() as session:
        row = await _detection(session, project_id, detection_id)
        row.analysis = text
    return DetectionOut.of(row)


class TableRequest(BaseModel):
    connector_id: Name
    table_name: Name


@router.post("/unblock", status_code=status.HTTP_204_NO_CONTENT)
async def unblock(
    body: TableRequest, project_id: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep
) -> None:
    """Let a blocked source flow again without accepting its change (accept it with /adapt instead)."""
    async with runtime.database.transaction() as session:
        closed = await service.unblock(
            session, project_id, body.connector_id, body.table_name, f"user:{principal.username}"
        )
    for detection in closed:
        service.record_decision(detection, "unblock")


# --- baselines and history -----------------------------------------------------------------------


class SchemaVersionOut(BaseModel):
    version: int
    schema_hash: str
    columns: list[dict[str, Any]]
    observed_event_id: str
    created_at: datetime


class History(BaseModel):
    project_id: str
    connector_id: str
    table_name: str
    blocked: bool
    versions: list[SchemaVersionOut]


@router.get("/history", response_model=History)
async def history(
    project_id: ProjectDep, session: SessionDep, connector_id: TableName, table_name: TableName
) -> History:
    """Every baseline version of a table, oldest first."""
    rows = await store.versions(session, project_id, connector_id, table_name)
    blocked = await store.block(session, project_id, connector_id, table_name) is not None
    return History(
        project_id=project_id,
        connector_id=connector_id,
        table_name=table_name,
        blocked=blocked,
        versions=[SchemaVersionOut.model_validate(r, from_attributes=True) for r in rows],
    )


@router.get("/history/page", response_class=HTMLResponse)
async def history_page(
    project_id: ProjectDep, session: SessionDep, connector_id: TableName, table_name: TableName
) -> HTMLResponse:
    """The table's history as a page: a timeline of versions and detections, then the details."""
    rows = await store.versions(session, project_id, connector_id, table_name)
    found = await store.detections(session, project_id, connector_id, table_name, None, 1_000)
    return HTMLResponse(plot.history_page(connector_id, table_name, rows, found))


class BaselineOut(BaseModel):
    connector_id: str
    table_name: str
    version: int
    schema_hash: str
    columns: int
    created_at: datetime
    blocked: bool


@router.get("/baselines", response_model=list[BaselineOut])
async def baselines(project_id: ProjectDep, session: SessionDep, limit: Limit = 500) -> list[BaselineOut]:
    """The current baseline of every table of the project."""
    out = []
    for row in await store.baselines(session, project_id, limit):
        blocked = await store.block(session, project_id, row.connector_id, row.table_name) is not None
        out.append(
            BaselineOut(
                connector_id=row.connector_id,
                table_name=row.table_name,
                version=row.version,
                schema_hash=row.schema_hash,
                columns=len(row.columns),
                created_at=row.created_at,
                blocked=blocked,
            )
        )
    return out


# --- audit ---------------------------------------------------------------------------------------


class AuditOut(BaseModel):
    id: int
    connector_id: str
    table_name: str
    detection_id: str | None
    action: str
    actor: str
    strategy: str | None
    before_hash: str | None
    after_hash: str | None
    drifts: list[dict[str, Any]]
    detail: str
    created_at: datetime


@router.get("/audit", response_model=list[AuditOut])
async def audit(
    project_id: ProjectDep,
    session: SessionDep,
    connector_id: Annotated[str | None, Query(max_length=255)] = None,
    table_name: Annotated[str | None, Query(max_length=255)] = None,
    limit: Limit = 100,
) -> list[AuditOut]:
    """Every detection and decision, newest first."""
    rows = await store.audit_trail(session, project_id, connector_id, table_name, limit)
    return [AuditOut.model_validate(row, from_attributes=True) for row in rows]


# --- policies ------------------------------------------------------------------------------------


class PolicyIn(BaseModel):
    connector_id: Name = Field(default="*", description="`*` for every connector (the project default).")
    table_name: Name = Field(default="*", description="`*` for every table of the connector.")
    strategies: dict[Severity, Strategy] = Field(
        description="severity -> strategy; missing ones use the default"
    )


class PolicyOut(BaseModel):
    connector_id: str
    table_name: str
    strategies: dict[Severity, Strategy]


@router.get("/policies", response_model=list[PolicyOut])
async def policies(project_id: ProjectDep, session: SessionDep) -> list[PolicyOut]:
    """Policies set in the project (the built-in default applies where none is set)."""
    return [
        PolicyOut.model_validate(row, from_attributes=True)
        for row in await store.policies(session, project_id)
    ]


@router.get("/policies/effective", response_model=PolicyOut)
async def effective_policy(
    project_id: ProjectDep, session: SessionDep, connector_id: TableName, table_name: TableName
) -> PolicyOut:
    """The policy that applies to a table."""
    strategies = await service.resolve_policy(session, project_id, connector_id, table_name)
    return PolicyOut(connector_id=connector_id, table_name=table_name, strategies=strategies)


@router.put("/policies", response_model=PolicyOut)
async def set_policy(
    body: PolicyIn, project_id: ProjectDep, principal: PrincipalDep, runtime: RuntimeDep
) -> PolicyOut:
    if body.connector_id == "*" and body.table_name != "*":
        raise Invalid("connector_id: a table policy needs its connector_id", at="/body/connector_id")
    async with runtime.database.transaction() as session:
        full = await service.set_policy(
            session,
            project_id,
            body.connector_id,
            body.table_name,
            body.strategies,
            f"user:{principal.username}",
        )
    return PolicyOut(connector_id=body.connector_id, table_name=body.table_name, strategies=full)


# --- live introspection --------------------------------------------------------------------------


class ObserveRequest(BaseModel):
    connector_id: Name
    tables: list[Name] = Field(min_length=1, max_length=500)
    url: str | None = Field(
        default=None,
        max_length=2_000,
        description="postgresql://, mysql:// (or mariadb://) or sqlite:/// URL; omit to read the "
        "platform's own ClickHouse.",
    )
    samples: int = Field(default=0, ge=0, le=100, description="distinct sample values per column")


class NotObserved(BaseModel):
    table: str
    reason: str


class ObserveResponse(BaseModel):
    event_ids: list[uuid.UUID]
    tables: list[str]
    failed: list[NotObserved] = Field(
        default_factory=list, description="Tables that could not be read, with the reason."
    )


@router.post("/observe", response_model=ObserveResponse, status_code=status.HTTP_202_ACCEPTED)
async def observe(body: ObserveRequest, project_id: ProjectDep, admin: AdminDep, runtime: RuntimeDep) -> Any:
    """Read the live schema of tables and publish `schema.observed` for each (administrators only:
    the gateway connects to the URL given). Tables that cannot be read are listed in `failed`; when
    none can, the answer is a 422 naming them."""
    if body.url is None:
        dialect: Dialect = "clickhouse"
        reader = observer.clickhouse_reader(runtime.clickhouse())
    else:
        try:
            dialect = observer.dialect_of(body.url)
        except observer.ObserveError as error:
            raise Invalid(str(error), at="/body/url") from None
        if dialect == "clickhouse":
            raise Invalid("url: omit url to read the platform's ClickHouse", at="/body/url")
        policy = OutboundPolicy.from_settings(runtime.settings)
        try:  # the host must be allowed (shared/outbound.py); a SQLite file must be in the data dir
            url = await asyncio.to_thread(checked_database_url, body.url, policy, runtime.settings)
        except (OutboundRefused, PathRefused) as error:
            raise Invalid(f"url: {error}", at="/body/url") from None
        reader = observer.sql_reader(url)
    try:
        published = await observer.observe_once(
            runtime.broker,
            reader,
            dialect=dialect,
            project_id=project_id,
            connector_id=body.connector_id,
            tables=body.tables,
            samples=body.samples,
            observed_by=f"user:{admin.username}",
        )
    except observer.ObserveError as error:
        field = str(error).partition(": ")[0]
        raise Invalid(str(error), at=f"/body/{field}") from None
    failed = [NotObserved(table=table, reason=reason) for table, reason in published.failed.items()]
    if not published.events:
        raise Invalid("tables: " + "; ".join(f"{f.table}: {f.reason}" for f in failed), at="/body/tables")
    return ObserveResponse(
        event_ids=[e.event_id for e in published.events],
        tables=[e.table_name for e in published.events],
        failed=failed,
    )
