"""Templates routes under /api/v1/advanced/templates: templates, instances, control table, runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy.exc import IntegrityError

from aietl.services.gateway.deps import (
    ROLE_TOO_LOW,
    PrincipalDep,
    ProjectDep,
    RuntimeDep,
    SessionDep,
    project_scope,
    project_with_role,
)
from aietl.services.gateway.roles import Role
from aietl.services.templates import schedules, store
from aietl.services.templates.connections import ConnectionFailed, ConnectionInfo
from aietl.services.templates.domain.model import (
    Category,
    ConfigProblem,
    InvalidConfig,
    Pattern,
    SqlDialect,
)
from aietl.services.templates.domain.schedule import CatchUp, Cron, InvalidSchedule, Timing
from aietl.services.templates.service import (
    Conflict,
    GeneratedEntry,
    NotFound,
    TemplatesService,
    service_of,
)
from aietl.services.templates.tables import (
    ControlEntry,
    PipelineInstance,
    PipelineRun,
    PipelineSchedule,
    TemplateVersion,
)
from aietl.shared.errors import Invalid, Problem
from aietl.shared.events.base import Name, ProjectId, utc_now

router = APIRouter(prefix="/advanced/templates", tags=["templates"])
# Routes naming the project in the body check the caller's role there (`require_role`).
BODY_PROJECT: dict[int | str, dict[str, Any]] = {
    **ROLE_TOO_LOW,
    404: {"description": "No such project (or not the caller's), or no such template"},
}
QueryProject = Annotated[str | None, Query(description="Project to act in (or `project_id` in the body).")]
Identifier = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateIn(Strict):
    """The specification's names are accepted beside the project's: `name` for `template_id`,
    `code_template` for `code`, `display_name`."""

    template_id: Identifier = Field(validation_alias=AliasChoices("template_id", "name"))
    display_name: str | None = Field(default=None, max_length=255)
    version: str | None = Field(
        default=None, description="MAJOR.MINOR.PATCH; default: bump the latest minor."
    )
    pattern: Pattern
    category: Category
    dialect: SqlDialect | None = Field(
        default=None, description="Omitted: portable, rendered in the dialect of the connection it runs on."
    )
    description: str = Field(default="", max_length=4_000)
    config_schema: dict[str, Any]
    code: str = Field(
        min_length=1, max_length=200_000, validation_alias=AliasChoices("code", "code_template")
    )
    project_id: ProjectId | None = None


class TemplateOut(BaseModel):
    template_id: str
    name: str = Field(
        validation_alias=AliasChoices("template_id"), description="The specification's name for the id."
    )
    display_name: str | None
    version: str
    builtin: bool = False
    pattern: str
    category: str
    dialect: str | None
    description: str
    config_schema: dict[str, Any]
    code: str
    created_at: datetime
    instances: int = 0
    runs: int = 0


class ScheduleFields(Strict):
    """When the pipeline runs on its own (the templates worker runs it)."""

    schedule: str | None = Field(
        default=None,
        max_length=255,
        description="Cron expression (minute hour day-of-month month day-of-week, or @hourly, @daily, ...).",
    )
    schedule_timezone: str = Field(
        default="UTC", max_length=64, description="IANA zone of the cron expression."
    )
    catch_up: CatchUp | None = Field(
        default=None,
        description="Slots missed while down: `skip` them, or `run_once`; default from settings.",
    )
    max_retries: int | None = Field(
        default=None, ge=0, le=100, description="Retries of a failed scheduled run."
    )
    retry_backoff_seconds: float | None = Field(
        default=None, ge=0, le=86_400, description="First retry delay; doubles per retry."
    )

    def timing(self) -> Timing | None:
        """The schedule, or None; InvalidConfig (pointer /schedule or /schedule_timezone) if unusable."""
        if self.schedule is None:
            return None
        try:
            cron = Cron.parse(self.schedule, self.schedule_timezone)
        except InvalidSchedule as error:
            pointer = "/schedule_timezone" if error.field == "timezone" else "/schedule"
            raise InvalidConfig([ConfigProblem(pointer, str(error))]) from None
        return Timing(cron, self.catch_up, self.max_retries, self.retry_backoff_seconds)


class InstantiateIn(ScheduleFields):
    """Send `schedule` to set or change the pipeline's schedule (null stops it); leave it out to
    keep the current one."""

    template_id: Identifier
    template_version: str | None = None
    config: dict[str, Any]
    project_id: ProjectId | None = Field(default=None, description="Default: the caller's only project.")
    pipeline_name: Name
    connection: Identifier | None = Field(
        default=None,
        description="Run target: `clickhouse` (embedded sandbox), an operator's or the project's "
        "connection. Default: the project's only own connection, else the `clickhouse` sandbox.",
    )
    source_system: Name | None = Field(
        default=None, description="Connector whose drift adapts this pipeline."
    )
    source_object: Name | None = None


class ScheduleOut(BaseModel):
    cron: str
    timezone: str
    catch_up: str
    max_retries: int
    retry_backoff_seconds: float
    next_run_at: datetime
    """When the scheduler acts next: the pending slot, a retry, or now for a requested run."""
    slot_at: datetime
    attempt: int
    last_run_id: str | None
    last_run_at: datetime | None
    last_status: str | None


class InstanceOut(BaseModel):
    instance_id: str
    pipeline_name: str
    version: int
    template_id: str
    template_version: str
    dialect: str
    connection: str
    source_system: str | None
    source_object: str | None
    config: dict[str, Any]
    code: str
    reason: str
    drift_event_id: str | None
    created_at: datetime
    created: bool = False
    schedule: ScheduleOut | None = None
    next_run_at: datetime | None = None


class ControlEntryIn(ScheduleFields):
    source_system: Name
    source_object: Name
    target_system: Identifier = Field(description="Connection the pipeline runs on (see /connections).")
    target_object: Name
    template_id: Identifier
    load_type: Pattern
    watermark_column: Name | None = None
    keys: list[Name] = Field(default_factory=list, max_length=32)
    enabled: bool = True
    order: int = Field(default=0, ge=-(2**31), le=2**31 - 1)
    config: dict[str, Any] = Field(default_factory=dict, description="Template config: columns, lag, ...")
    project_id: ProjectId | None = Field(
        default=None, description="Or `?project_id=`; default: your only one."
    )


class ControlEntryOut(ControlEntryIn):
    order: int = Field(validation_alias=AliasChoices("run_order", "order"))  # the row's `run_order`
    id: str
    project_id: str
    created_at: datetime
    updated_at: datetime


class GenerateIn(Strict):
    project_id: ProjectId | None = None
    dry_run: bool = True


class GeneratedOut(BaseModel):
    entry_id: str
    pipeline_name: str
    template_id: str
    template_version: str | None
    code: str | None
    errors: list[Problem]
    instance_id: str | None
    instance_version: int | None
    created: bool


class GenerateOut(BaseModel):
    project_id: str
    dry_run: bool
    pipelines: list[GeneratedOut]
    valid: int
    invalid: int


class RunOut(BaseModel):
    run_id: str
    instance_id: str
    instance_version: int
    pipeline_name: str
    template_id: str
    template_version: str
    status: str
    trigger: str
    """schedule, manual or drift."""
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    rows_read: int
    rows_written: int
    error_count: int
    error_message: str | None
    high_watermark: str | None
    cpu_percent: float | None
    memory_mb: float | None
    warnings: list[str] = []
    """The run ended, but something needs a look (e.g. no change matched `delete_values`)."""


def _service(runtime: RuntimeDep) -> TemplatesService:
    return service_of(runtime)


def _template_out(row: TemplateVersion, instances: int = 0, runs: int = 0) -> TemplateOut:
    out = TemplateOut.model_validate(row, from_attributes=True)
    out.builtin, out.instances, out.runs = row.project_id == "_builtin", instances, runs
    return out


def _schedule_out(row: PipelineSchedule, service: TemplatesService) -> ScheduleOut:
    policy = schedules.timing_of(row).policy(service.config.schedule_policy())
    return ScheduleOut(
        cron=row.cron,
        timezone=row.timezone,
        catch_up=policy.catch_up,
        max_retries=policy.max_retries,
        retry_backoff_seconds=policy.retry_backoff_seconds,
        next_run_at=row.due_at,
        slot_at=row.slot_at,
        attempt=row.attempt,
        last_run_id=row.last_run_id,
        last_run_at=row.last_run_at,
        last_status=row.last_status,
    )


def _instance_out(
    row: PipelineInstance,
    created: bool = False,
    schedule: PipelineSchedule | None = None,
    service: TemplatesService | None = None,
) -> InstanceOut:
    out = InstanceOut.model_validate(row, from_attributes=True)
    out.created = created
    if schedule is not None and service is not None:
        out.schedule = _schedule_out(schedule, service)
        out.next_run_at = out.schedule.next_run_at
    return out


def _entry_out(row: ControlEntry) -> ControlEntryOut:
    return ControlEntryOut.model_validate(row, from_attributes=True)


def _run_out(row: PipelineRun) -> RunOut:
    fields = {name: getattr(row, name) for name in RunOut.model_fields}
    return RunOut.model_validate({**fields, "warnings": row.warnings or []})


def _generated_out(entry: GeneratedEntry) -> GeneratedOut:
    return GeneratedOut.model_validate(entry, from_attributes=True)


# --- templates -------------------------------------------------------------------------------


@router.post(
    "/create",
    status_code=status.HTTP_201_CREATED,
    response_model=TemplateOut,
    responses={**BODY_PROJECT, 409: {"description": "This template version exists"}},
)
async def create_template(
    body: TemplateIn, principal: PrincipalDep, runtime: RuntimeDep, project_id: QueryProject = None
) -> TemplateOut:
    """Store a new immutable template version (editing a template = creating its next version).

    Needs a maintainer of the project: a template's code is SQL of the project's own making (members
    instantiate and run the built-ins and the maintainers' templates)."""
    project = project_scope(principal, body.project_id or project_id, Role.maintainer)
    service = _service(runtime)
    async with runtime.database.transaction() as session:
        row = await service.create_template(
            session,
            project,
            template_id=body.template_id,
            version=body.version,
            pattern=body.pattern,
            category=body.category,
            dialect=body.dialect,
            display_name=body.display_name,
            description=body.description,
            config_schema=body.config_schema,
            code=body.code,
        )
    return _template_out(row)


@router.get("/list", response_model=list[TemplateOut])
async def list_templates(
    project_id: ProjectDep,
    session: SessionDep,
    runtime: RuntimeDep,
    pattern: Annotated[Pattern | None, Query()] = None,
) -> list[TemplateOut]:
    """Built-in and project templates, every version, with their usage in the project."""
    rows = await _service(runtime).list_templates(session, project_id, pattern)
    return [_template_out(row, instances, runs) for row, instances, runs in rows]


# --- instances -------------------------------------------------------------------------------


@router.post(
    "/instantiate", status_code=status.HTTP_201_CREATED, response_model=InstanceOut, responses=BODY_PROJECT
)
async def instantiate(
    body: InstantiateIn, principal: PrincipalDep, runtime: RuntimeDep, project_id: QueryProject = None
) -> Any:
    """Validate the config, render the template, check its code and source, save an instance version.
    Needs a member of the project. Without `connection` the pipeline gets the project's default one
    (`Connections.default`, see docs/templates.md)."""
    project = project_scope(principal, body.project_id or project_id, Role.member)
    service = _service(runtime)
    saved = await service.instantiate(
        project,
        pipeline_name=body.pipeline_name,
        template_id=body.template_id,
        template_version=body.template_version,
        config=body.config,
        connection=body.connection,
        source_system=body.source_system,
        source_object=body.source_object,
        schedule=body.timing() if "schedule" in body.model_fields_set else ...,
    )
    async with runtime.database.sessions() as session:
        planned = await schedules.schedule_of(session, project, saved.instance.pipeline_name)
    return _instance_out(saved.instance, saved.created, planned, service)


@router.get("/instances", response_model=list[InstanceOut])
async def list_instances(
    project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> list[InstanceOut]:
    """The latest version of every pipeline of the project, with its schedule and next run time."""
    planned = await schedules.schedules_of(session, project_id)
    service = _service(runtime)
    return [
        _instance_out(row, schedule=planned.get(row.instance_id), service=service)
        for row in await store.latest_instances(session, project_id)
    ]


@router.get("/instances/{instance_id}", response_model=InstanceOut)
async def get_instance(
    instance_id: str, project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> InstanceOut:
    """The latest version of the pipeline, with its schedule and next run time (null: unscheduled)."""
    rows = await store.instance_versions(session, project_id, instance_id)
    if not rows:
        raise NotFound(f"pipeline instance {instance_id!r} not found")
    latest = rows[-1]
    planned = await schedules.schedule_of(session, project_id, latest.pipeline_name)
    return _instance_out(latest, schedule=planned, service=_service(runtime))


@router.get("/instances/{instance_id}/versions", response_model=list[InstanceOut])
async def instance_versions(
    instance_id: str, project_id: ProjectDep, session: SessionDep
) -> list[InstanceOut]:
    rows = await store.instance_versions(session, project_id, instance_id)
    if not rows:
        raise NotFound(f"pipeline instance {instance_id!r} not found")
    return [_instance_out(row) for row in rows]


@router.post("/instances/{instance_id}/run", response_model=RunOut)
async def run_instance(instance_id: str, project_id: ProjectDep, runtime: RuntimeDep) -> Any:
    """Run the latest version now; a failed run is answered 200 with status "failed" and its error,
    a pipeline that is running already 409.

    Code that no longer passes the checks (unknown connection, objects outside its source and
    target) is refused with 422 before anything runs."""
    return _run_out(await _service(runtime).run(project_id, instance_id, trigger="manual"))


@router.get("/instances/{instance_id}/runs", response_model=list[RunOut])
async def list_runs(
    instance_id: str,
    project_id: ProjectDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> list[RunOut]:
    if not await store.instance_versions(session, project_id, instance_id):
        raise NotFound(f"pipeline instance {instance_id!r} not found")
    return [_run_out(row) for row in await store.runs(session, project_id, instance_id, limit)]


# --- control table ---------------------------------------------------------------------------


def _apply(row: ControlEntry, body: ControlEntryIn) -> None:
    for name in (
        "source_system",
        "source_object",
        "target_system",
        "target_object",
        "template_id",
        "load_type",
    ):
        setattr(row, name, getattr(body, name))
    row.watermark_column = body.watermark_column
    row.keys = list(body.keys)
    row.enabled = body.enabled
    row.run_order = body.order
    row.schedule = body.schedule
    row.schedule_timezone = body.schedule_timezone
    row.catch_up = body.catch_up
    row.max_retries = body.max_retries
    row.retry_backoff_seconds = body.retry_backoff_seconds
    row.config = body.config
    row.updated_at = utc_now()


def _duplicate(body: ControlEntryIn) -> Conflict:
    return Conflict(f"an entry already writes {body.target_system}.{body.target_object} in this project")


@router.post(
    "/control-table",
    status_code=status.HTTP_201_CREATED,
    response_model=ControlEntryOut,
    responses={409: {"description": "An entry for this source exists"}},
)
async def create_entry(
    body: ControlEntryIn, principal: PrincipalDep, runtime: RuntimeDep, project_id: QueryProject = None
) -> Any:
    """A new entry; `generate` turns it into a pipeline, which then runs on the entry's schedule."""
    project = project_scope(principal, body.project_id or project_id, Role.member)
    body.timing()  # InvalidConfig (422) when the schedule is unusable
    row = ControlEntry(id=str(uuid.uuid4()), project_id=project, created_at=utc_now())
    _apply(row, body)
    try:
        async with runtime.database.transaction() as session:
            session.add(row)
    except IntegrityError:
        raise _duplicate(body) from None
    return _entry_out(row)


@router.get("/control-table", response_model=list[ControlEntryOut])
async def list_entries(project_id: ProjectDep, session: SessionDep) -> list[ControlEntryOut]:
    return [_entry_out(row) for row in await store.control_entries(session, project_id)]


async def _entry_or_404(session: Any, project_id: str, entry_id: str) -> ControlEntry:
    row = await store.control_entry(session, project_id, entry_id)
    if row is None:
        raise NotFound(f"control entry {entry_id!r} not found")
    return row


@router.get("/control-table/{entry_id}", response_model=ControlEntryOut)
async def get_entry(entry_id: str, project_id: ProjectDep, session: SessionDep) -> ControlEntryOut:
    return _entry_out(await _entry_or_404(session, project_id, entry_id))


@router.put(
    "/control-table/{entry_id}",
    response_model=ControlEntryOut,
    responses={409: {"description": "An entry for this source exists"}},
)
async def update_entry(
    entry_id: str, body: ControlEntryIn, project_id: ProjectDep, runtime: RuntimeDep
) -> Any:
    """Replace the entry; its generated pipeline follows the new schedule at once."""
    if body.project_id is not None and body.project_id != project_id:
        raise Invalid("project_id differs from the entry's", at="/body/project_id")
    body.timing()  # InvalidConfig (422) when the schedule is unusable
    service = _service(runtime)
    try:
        async with runtime.database.transaction() as session:
            row = await _entry_or_404(session, project_id, entry_id)
            before = f"{row.target_system}.{row.target_object}"
            _apply(row, body)
            if before != f"{row.target_system}.{row.target_object}":
                await service.sync_entry_schedule(session, row, pipeline_name=before, removed=True)
            await service.sync_entry_schedule(session, row)
    except IntegrityError:
        raise _duplicate(body) from None
    return _entry_out(row)


@router.delete("/control-table/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_entry(entry_id: str, project_id: ProjectDep, runtime: RuntimeDep) -> None:
    """Remove the entry; its generated pipeline stays, no longer scheduled."""
    async with runtime.database.transaction() as session:
        row = await _entry_or_404(session, project_id, entry_id)
        await _service(runtime).sync_entry_schedule(session, row, removed=True)
        await session.delete(row)


@router.post("/generate", response_model=GenerateOut, responses=BODY_PROJECT)
async def generate(
    body: GenerateIn, principal: PrincipalDep, runtime: RuntimeDep, project_id: QueryProject = None
) -> GenerateOut:
    """Render one pipeline per enabled control entry; `dry_run` (default) saves nothing."""
    # a dry run (the default) only previews: viewers may; saving pipelines needs a member
    project = project_scope(
        principal, body.project_id or project_id, Role.viewer if body.dry_run else Role.member
    )
    entries = await _service(runtime).generate(project, dry_run=body.dry_run)
    invalid_count = sum(1 for entry in entries if entry.errors)
    return GenerateOut(
        project_id=project,
        dry_run=body.dry_run,
        pipelines=[_generated_out(entry) for entry in entries],
        valid=len(entries) - invalid_count,
        invalid=invalid_count,
    )


# --- connections -----------------------------------------------------------------------------


class ConnectionIn(Strict):
    name: Identifier
    url: SecretStr = Field(
        description="postgresql://user:password@host:port/db, clickhouse://user:password@host:8123/db, "
        "or sqlite:///<file name> (a file in the project's folder). Stored sealed, never returned."
    )
    project_id: ProjectId | None = None


class ConnectionOut(BaseModel):
    name: str
    kind: str
    dialect: str
    origin: str = Field(description="embedded (sandboxed chDB), operator (configured) or project (yours).")
    summary: str = Field(description="Where it points, without the password.")


class ConnectionTestOut(BaseModel):
    name: str
    ok: bool
    seconds: float | None = None
    error: str | None = Field(default=None, description="The kind of failure; never the server's reply.")


def _connection_out(info: ConnectionInfo) -> ConnectionOut:
    return ConnectionOut.model_validate(info, from_attributes=True)


@router.get("/connections", response_model=list[ConnectionOut])
async def list_connections(project_id: ProjectDep, runtime: RuntimeDep) -> list[ConnectionOut]:
    """Run targets the project may use: the embedded sandbox, the operator's and its own."""
    return [_connection_out(info) for info in await _service(runtime).connections.list(project_id)]


@router.post("/connections", status_code=status.HTTP_201_CREATED, response_model=ConnectionOut)
async def create_connection(
    body: ConnectionIn, principal: PrincipalDep, runtime: RuntimeDep, project_id: QueryProject = None
) -> ConnectionOut:
    """Add a run target to the project, usable at once (no restart). Needs a maintainer."""
    project = project_scope(principal, body.project_id or project_id, Role.maintainer)
    info = await _service(runtime).connections.create(project, body.name, body.url.get_secret_value())
    return _connection_out(info)


@router.delete("/connections/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_connection(
    name: str, project_id: Annotated[str, Depends(project_with_role(Role.maintainer))], runtime: RuntimeDep
) -> None:
    """Needs a maintainer."""
    await _service(runtime).connections.delete(project_id, name)


@router.post("/connections/{name}/test", response_model=ConnectionTestOut)
async def test_connection(name: str, project_id: ProjectDep, runtime: RuntimeDep) -> ConnectionTestOut:
    """Run `SELECT 1` there; a failure answers 200 with `ok: false` and only the kind of failure."""
    try:
        seconds = await _service(runtime).connections.test(project_id, name)
    except ConnectionFailed as error:
        return ConnectionTestOut(name=name, ok=False, error=str(error))
    return ConnectionTestOut(name=name, ok=True, seconds=round(seconds, 4))
