"""The templates application: template versions, instances, control-table generation, runs, adaptation.

Routes and the worker are thin callers of `TemplatesService` (one per process, shared through
`Runtime.component`). Pure decisions live in `domain`; SQL in `store`; execution in `targets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.runtime import Runtime
from aietl.services.templates import schedules, store
from aietl.services.templates.builtin import BuiltinTemplate, builtin_templates
from aietl.services.templates.config import TemplatesSettings
from aietl.services.templates.connections import BadConnection, Connections, UnknownConnection
from aietl.services.templates.domain.generation import (
    CannotAdapt,
    ControlSpec,
    PipelineNames,
    adapt_config,
    entry_config,
    entry_problems,
)
from aietl.services.templates.domain.model import (
    BUILTIN_SCOPE,
    ConfigProblem,
    GenerationReason,
    InvalidConfig,
    SemVer,
    SqlDialect,
    TemplateError,
)
from aietl.services.templates.domain.rendering import Rendered, Statement, code_digest, quoted_table
from aietl.services.templates.domain.schedule import Cron, InvalidSchedule, Timing, Trigger
from aietl.services.templates.renderer import Renderer
from aietl.services.templates.streaming import read_batch
from aietl.services.templates.tables import (
    ControlEntry,
    PipelineInstance,
    PipelineRun,
    PipelineState,
    TemplateVersion,
)
from aietl.services.templates.targets import RunStats, Target
from aietl.shared import metrics
from aietl.shared.errors import Conflict, Invalid, NotFound
from aietl.shared.events import DriftDetected, PipelineRunMetrics, PipelinesGenerated
from aietl.shared.events.base import utc_now
from aietl.shared.lease import LeaseHeld, Leases

log = structlog.get_logger(__name__)
COMPONENT = "templates.service"


class PipelineBusy(Conflict):
    """A run of the pipeline is in progress (in this process or another replica)."""


DEFAULT_DIALECT: SqlDialect = "postgres"
"""The dialect a portable template is checked in when its connection is unknown."""


def run_lease(project_id: str, pipeline_name: str) -> str:
    return f"run:{project_id}/{pipeline_name}"


def holder_id() -> str:
    """Who holds a lease: host, process and a random part (two services in one process differ)."""
    return f"{socket.gethostname()[:30]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def template_label(template_scope: str, template_id: str) -> str:
    """The `template` label of metrics: a built-in's id, else "custom" (project templates' names
    are user input and would make the label unbounded)."""
    return template_id if template_scope == BUILTIN_SCOPE else "custom"


@dataclass
class GeneratedEntry:
    entry_id: str
    pipeline_name: str
    template_id: str
    template_version: str | None = None
    code: str | None = None
    errors: list[ConfigProblem] = field(default_factory=list)
    instance_id: str | None = None
    instance_version: int | None = None
    created: bool = False


@dataclass(frozen=True)
class SavedInstance:
    instance: PipelineInstance
    created: bool


class AdaptationOutcome(BaseModel):
    """What one drift event produced; stored by `process_once` and republished on redelivery."""

    generated: list[PipelinesGenerated] = []


def _usage() -> tuple[float, float]:
    """CPU seconds used by this process so far, and its peak resident memory in MB."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


class TemplatesService:
    def __init__(self, runtime: Runtime, config: TemplatesSettings | None = None) -> None:
        self.runtime = runtime
        self.config = config or TemplatesSettings()
        self.connections = Connections(runtime)
        self.leases = Leases(runtime.database, holder_id(), utc_now, self.config.lease_seconds)
        self.renderer = Renderer(runtime.settings)
        self._builtins_ready = False
        runtime.on_shutdown(self.connections.close)
        runtime.on_shutdown(self.renderer.close)

    # --- templates -------------------------------------------------------------------------

    async def ensure_builtins(self) -> None:
        """Store the shipped templates once (idempotent across processes)."""
        if self._builtins_ready:
            return
        try:
            async with self.runtime.database.transaction() as session:
                rows = await session.execute(
                    select(TemplateVersion.template_id, TemplateVersion.version).where(
                        TemplateVersion.project_id == BUILTIN_SCOPE
                    )
                )
                stored = {(template_id, version) for template_id, version in rows}
                session.add_all(
                    _builtin_row(template)
                    for template in builtin_templates()
                    if (template.template_id, template.version) not in stored
                )
        except IntegrityError:
            log.info("built-in templates stored by another process")
        self._builtins_ready = True

    async def create_template(
        self,
        session: AsyncSession,
        project_id: str,
        *,
        template_id: str,
        version: str | None,
        pattern: str,
        category: str,
        dialect: str | None,
        description: str,
        config_schema: dict[str, Any],
        code: str,
        display_name: str | None = None,
    ) -> TemplateVersion:
        """A new immutable version; without `version` the latest one's minor is bumped. Without a
        dialect the template is portable: rendered for its connection's dialect when instantiated."""
        await self.ensure_builtins()
        if any(template.template_id == template_id for template in builtin_templates()):
            raise Conflict(f"template_id {template_id!r} is a built-in template's id")
        await self.renderer.check_template(config_schema, code)
        existing = [t for t in await store.template_versions(session, project_id, template_id)]
        latest = max((SemVer(t.major, t.minor, t.patch) for t in existing), default=None)
        if version is None:
            chosen = latest.bump_minor() if latest else SemVer(1, 0, 0)
        else:
            try:
                chosen = SemVer.parse(version)
            except ValueError as error:
                raise Invalid(str(error), at="/body/version") from None
            if latest is not None and chosen <= latest:
                raise Conflict(f"version {chosen} of {template_id!r} must be greater than {latest}")
        row = TemplateVersion(
            project_id=project_id,
            template_id=template_id,
            version=str(chosen),
            major=chosen.major,
            minor=chosen.minor,
            patch=chosen.patch,
            pattern=pattern,
            category=category,
            dialect=dialect,
            display_name=display_name,
            description=description,
            config_schema=config_schema,
            code=code,
        )
        session.add(row)
        await session.flush()
        return row

    async def list_templates(
        self, session: AsyncSession, project_id: str, pattern: str | None = None
    ) -> list[tuple[TemplateVersion, int, int]]:
        await self.ensure_builtins()
        counts = await store.usage(session, project_id)
        return [
            (t, *counts.get((t.project_id, t.template_id, t.version), (0, 0)))
            for t in await store.template_versions(session, project_id, pattern=pattern)
        ]

    async def resolve_template(
        self, session: AsyncSession, project_id: str, template_id: str, version: str | None = None
    ) -> TemplateVersion:
        """The project's template of that id, else the built-in; the latest version unless pinned."""
        await self.ensure_builtins()
        candidates = await store.template_versions(session, project_id, template_id)
        own = [t for t in candidates if t.project_id == project_id] or list(candidates)
        if version is not None:
            own = [t for t in own if t.version == version]
        if not own:
            pinned = f" version {version}" if version else ""
            raise NotFound(f"template {template_id!r}{pinned} not found")
        return max(own, key=lambda t: (t.major, t.minor, t.patch))

    # --- instances -------------------------------------------------------------------------

    async def prepare(
        self,
        template: TemplateVersion,
        config: Any,
        *,
        reason: GenerationReason,
        dialect: SqlDialect | None = None,
        names: PipelineNames,
    ) -> tuple[dict[str, Any], Rendered]:
        """Validate the config, render it in `dialect` (the connection's; a template's own dialect
        wins) and check the code stays within the pipeline's source and target (raises InvalidConfig
        or TemplateError); done in a bounded child process."""
        started = time.perf_counter()
        prepared = await self.renderer.prepare(
            template.config_schema,
            template.code,
            template.dialect or dialect or DEFAULT_DIALECT,
            template.pattern,
            config,
            names,
        )
        metrics.PIPELINE_GENERATION_SECONDS.labels(reason=reason).observe(time.perf_counter() - started)
        return prepared

    async def check_connection(
        self, project_id: str, template: TemplateVersion, connection: str
    ) -> SqlDialect:
        """The dialect the pipeline runs in: that of the project's connection (pointer `/connection`
        when there is none of that name), which a dialect-bound template must speak."""
        try:
            dialect = (await self.connections.info(project_id, connection)).dialect
        except UnknownConnection as error:
            raise InvalidConfig([ConfigProblem("/connection", str(error))]) from None
        if template.dialect is not None and dialect != template.dialect:
            raise InvalidConfig(
                [
                    ConfigProblem(
                        "/connection",
                        f"connection {connection!r} speaks {dialect}; template {template.template_id!r} "
                        f"is for {template.dialect}",
                    )
                ]
            )
        return dialect

    async def source_problems(
        self,
        project_id: str,
        connection: str,
        dialect: SqlDialect,
        config: dict[str, Any],
        config_schema: dict[str, Any],
    ) -> list[ConfigProblem]:
        """A missing source table or column, found by reading the source's columns on the connection.

        Only for templates whose schema declares the `source` table object (the built-ins' shape): a
        control entry also hands `source` to templates that merely accept extra fields (the
        specification's, which name `source_table`), and those may be generated before their source
        exists; the scope check covers them either way."""
        source = config.get("source")
        declared = "source" in (config_schema.get("properties") or {})
        if not declared or not isinstance(source, dict) or not isinstance(source.get("name"), str):
            return []
        table = quoted_table(source, dialect)
        shown = ".".join(str(part) for part in (source.get("schema"), source["name"]) if part)
        try:
            target = await self.connections.target(project_id, connection)
            present = set(await target.columns(table))
        except Exception:  # the remote's reply is not shown; the table cannot be read
            return [
                ConfigProblem("/source", f"source table {shown} cannot be read on connection {connection!r}")
            ]
        problems = [
            ConfigProblem(f"/columns/{index}/source", f"column {column['source']!r} is not in {shown}")
            for index, column in enumerate(config.get("columns") or [])
            if isinstance(column, dict) and column.get("source") not in present
        ]
        operation = config.get("operation_column")
        if isinstance(operation, str) and operation not in present:
            problems.append(ConfigProblem("/operation_column", f"column {operation!r} is not in {shown}"))
        return problems

    async def save_instance(
        self,
        session: AsyncSession,
        *,
        project_id: str,
        pipeline_name: str,
        template: TemplateVersion,
        config: dict[str, Any],
        rendered: Rendered,
        dialect: SqlDialect,
        connection: str,
        reason: GenerationReason,
        source_system: str | None = None,
        source_object: str | None = None,
        control_entry_id: str | None = None,
        drift_event_id: str | None = None,
    ) -> SavedInstance:
        """A new instance version unless the latest one already has this template, config and code."""
        latest = await store.latest_instance(session, project_id, pipeline_name)
        digest = code_digest(rendered.code)
        if (
            latest is not None
            and latest.code_sha256 == digest
            and latest.config == config
            and latest.connection == connection
            and (latest.template_scope, latest.template_id, latest.template_version)
            == (template.project_id, template.template_id, template.version)
        ):
            return SavedInstance(latest, created=False)
        instance = PipelineInstance(
            instance_id=latest.instance_id if latest else str(uuid.uuid4()),
            project_id=project_id,
            pipeline_name=pipeline_name,
            version=latest.version + 1 if latest else 1,
            template_scope=template.project_id,
            template_id=template.template_id,
            template_version=template.version,
            dialect=dialect,
            connection=connection,
            source_system=source_system if source_system is not None else (latest and latest.source_system),
            source_object=source_object if source_object is not None else (latest and latest.source_object),
            control_entry_id=control_entry_id if control_entry_id else (latest and latest.control_entry_id),
            config=config,
            code=rendered.code,
            code_sha256=digest,
            reason=reason,
            drift_event_id=drift_event_id,
        )
        session.add(instance)
        await session.flush()
        metrics.TEMPLATE_USAGE.labels(
            template=template_label(template.project_id, template.template_id),
            pattern=template.pattern,
            reason=reason,
        ).inc()
        return SavedInstance(instance, created=True)

    async def instantiate(
        self,
        project_id: str,
        *,
        pipeline_name: str,
        template_id: str,
        template_version: str | None,
        config: Any,
        connection: str | None,
        source_system: str | None = None,
        source_object: str | None = None,
        schedule: Timing | EllipsisType | None = ...,
    ) -> SavedInstance:
        """Save the pipeline's new version (if anything changed) and, unless `schedule` is left out
        (`...`), set or clear its schedule. Without `connection`, the project's default one
        (`Connections.default`)."""
        async with self.runtime.database.sessions() as session:
            template = await self.resolve_template(session, project_id, template_id, template_version)
        if connection is None:
            try:
                connection = await self.connections.default(project_id)
            except UnknownConnection as error:
                raise InvalidConfig([ConfigProblem("/connection", str(error))]) from None
        dialect = await self.check_connection(project_id, template, connection)
        ready, rendered = await self.prepare(
            template,
            config,
            reason="manual",
            dialect=dialect,
            names=PipelineNames(pipeline_name, source_object),
        )
        missing = await self.source_problems(project_id, connection, dialect, ready, template.config_schema)
        if missing:
            raise InvalidConfig(missing)
        async with self.runtime.database.transaction() as session:
            saved = await self.save_instance(
                session,
                project_id=project_id,
                pipeline_name=pipeline_name,
                template=template,
                config=ready,
                rendered=rendered,
                dialect=dialect,
                connection=connection,
                reason="manual",
                source_system=source_system,
                source_object=source_object,
            )
            if not isinstance(schedule, EllipsisType):
                await schedules.set_schedule(
                    session,
                    project_id=project_id,
                    pipeline_name=pipeline_name,
                    instance_id=saved.instance.instance_id,
                    timing=schedule,
                    now=utc_now(),
                )
            if saved.created:
                self.runtime.outbox.enqueue(session, [generated_event(saved.instance)])
        return saved

    # --- control table -----------------------------------------------------------------------

    async def generate(self, project_id: str, *, dry_run: bool) -> list[GeneratedEntry]:
        """One pipeline per enabled control entry. A dry run renders and validates everything and
        saves nothing; a real run saves a new instance version for each valid entry that changed."""
        await self.ensure_builtins()
        results: list[GeneratedEntry] = []
        async with self.runtime.database.transaction() as session:
            templates: dict[str, TemplateVersion | NotFound] = {}
            entries: list[tuple[ControlEntry, ControlSpec, GeneratedEntry, TemplateVersion]] = []
            for row in await store.control_entries(session, project_id, enabled_only=True):
                spec = control_spec(row)
                result = GeneratedEntry(spec.entry_id, spec.pipeline_name, spec.template_id)
                results.append(result)
                if spec.template_id not in templates:
                    try:
                        templates[spec.template_id] = await self.resolve_template(
                            session, project_id, spec.template_id
                        )
                    except NotFound as missing:
                        templates[spec.template_id] = missing
                template = templates[spec.template_id]
                if isinstance(template, NotFound):
                    result.errors = [ConfigProblem("/template_id", str(template))]
                    continue
                result.template_version = template.version
                entries.append((row, spec, result, template))
            # rendered concurrently: the renderer's child processes share the work
            rendered_entries = await asyncio.gather(
                *(self._render_entry(project_id, spec, template) for _row, spec, _result, template in entries)
            )
            for (row, spec, result, template), (errors, prepared, dialect) in zip(
                entries, rendered_entries, strict=True
            ):
                result.errors = errors
                try:
                    timing = entry_timing(row)
                except InvalidSchedule as error:
                    result.errors.append(ConfigProblem(f"/{error.field}", str(error)))
                if prepared is not None:
                    result.code = prepared[1].code
                if prepared is None or result.errors or dry_run:
                    continue
                ready, rendered = prepared
                result.errors = await self.source_problems(
                    project_id, spec.target_system, dialect, ready, template.config_schema
                )
                if result.errors:
                    continue
                saved = await self.save_instance(
                    session,
                    project_id=project_id,
                    pipeline_name=spec.pipeline_name,
                    template=template,
                    config=ready,
                    rendered=rendered,
                    dialect=dialect,
                    connection=spec.target_system,
                    reason="control_table",
                    source_system=spec.source_system,
                    source_object=spec.source_object,
                    control_entry_id=spec.entry_id,
                )
                await schedules.set_schedule(
                    session,
                    project_id=project_id,
                    pipeline_name=spec.pipeline_name,
                    instance_id=saved.instance.instance_id,
                    timing=timing,
                    now=utc_now(),
                )
                result.instance_id = saved.instance.instance_id
                result.instance_version = saved.instance.version
                result.created = saved.created
                if saved.created:
                    self.runtime.outbox.enqueue(session, [generated_event(saved.instance)])
        return results

    async def _render_entry(
        self, project_id: str, spec: ControlSpec, template: TemplateVersion
    ) -> tuple[list[ConfigProblem], tuple[dict[str, Any], Rendered] | None, SqlDialect]:
        """Every problem of one control entry (its own fields, its connection, its config), its code
        when the config renders, and the dialect it is rendered in."""
        pattern: Any = template.pattern
        problems = entry_problems(spec, pattern)
        dialect: SqlDialect = template.dialect or DEFAULT_DIALECT
        try:
            dialect = await self.check_connection(project_id, template, spec.target_system)
        except InvalidConfig as error:
            problems.extend(ConfigProblem("/target_system", p.message) for p in error.problems)
        try:
            prepared = await self.prepare(
                template,
                entry_config(spec, pattern, template.config_schema),
                reason="control_table",
                dialect=dialect,
                names=PipelineNames(spec.pipeline_name, spec.source_object, spec.target_object),
            )
        except InvalidConfig as error:
            return [*problems, *error.problems], None, dialect
        except TemplateError as error:
            return [*problems, ConfigProblem("", str(error))], None, dialect
        return problems, prepared, dialect

    async def sync_entry_schedule(
        self,
        session: AsyncSession,
        entry: ControlEntry,
        *,
        pipeline_name: str | None = None,
        removed: bool = False,
    ) -> None:
        """After a control entry changed: its generated pipeline (if any; by default the one the
        entry names now) follows the entry's schedule, or stops being scheduled when the entry is
        disabled or removed (raises InvalidSchedule for a schedule that cannot run)."""
        name = pipeline_name or control_spec(entry).pipeline_name
        pipeline = await store.latest_instance(session, entry.project_id, name)
        if pipeline is None or pipeline.control_entry_id != entry.id:
            return
        await schedules.set_schedule(
            session,
            project_id=entry.project_id,
            pipeline_name=pipeline.pipeline_name,
            instance_id=pipeline.instance_id,
            timing=None if removed else entry_timing(entry),
            now=utc_now(),
        )

    # --- runs --------------------------------------------------------------------------------

    async def run(self, project_id: str, instance_id: str, trigger: Trigger = "manual") -> PipelineRun:
        """Execute the instance's latest version on its target, record the run, publish its metrics.
        Raises PipelineBusy while another run of the pipeline is in progress (on any replica)."""
        async with self.runtime.database.sessions() as session:
            versions = await store.instance_versions(session, project_id, instance_id)
            if not versions:
                raise NotFound(f"pipeline instance {instance_id!r} not found")
            instance = versions[-1]
            template = await self.resolve_template(
                session, project_id, instance.template_id, instance.template_version
            )
            names = await self._names(session, instance)
        try:
            target = await self.connections.target(project_id, instance.connection)
        except (UnknownConnection, BadConnection) as unreachable:
            raise InvalidConfig([ConfigProblem("/connection", str(unreachable))]) from None
        statements = await self.renderer.runnable(
            instance.code,
            instance.dialect,
            template.pattern,
            instance.config,
            names,
        )
        async with self._run_lease(project_id, instance.pipeline_name):
            started_at, started, (cpu_before, _) = utc_now(), time.perf_counter(), _usage()
            stats, malformed, error = RunStats(), 0, None
            try:
                stats, malformed = await self._execute(instance, target, statements)
            except Exception as failure:  # a failed run is data: recorded, published, never raised
                error = f"{type(failure).__name__}: {failure}"[:4_000]
                log.warning("pipeline run failed", pipeline=instance.pipeline_name, error=error)
            duration = time.perf_counter() - started
            cpu_after, peak_mb = _usage()
            if stats.warning:
                log.warning("pipeline run warning", pipeline=instance.pipeline_name, warning=stats.warning)
            run = PipelineRun(
                run_id=str(uuid.uuid4()),
                project_id=project_id,
                instance_id=instance.instance_id,
                instance_version=instance.version,
                pipeline_name=instance.pipeline_name,
                template_scope=instance.template_scope,
                template_id=instance.template_id,
                template_version=instance.template_version,
                status="failed" if error else "success",
                trigger=trigger,
                started_at=started_at,
                ended_at=utc_now(),
                duration_seconds=duration,
                rows_read=stats.rows_read,
                rows_written=stats.rows_written,
                error_count=malformed + (1 if error else 0),
                error_message=error or (f"{malformed} malformed messages skipped" if malformed else None),
                high_watermark=stats.high_watermark,
                cpu_percent=100 * (cpu_after - cpu_before) / duration if duration > 0 else 0.0,
                memory_mb=peak_mb,
                warnings=[stats.warning] if stats.warning else None,
            )
            async with self.runtime.database.transaction() as session:
                session.add(run)
                self.runtime.outbox.enqueue(session, [run_metrics_event(run)])
        metrics.PIPELINE_RUNS.labels(
            status=run.status, trigger=trigger, template=template_label(run.template_scope, run.template_id)
        ).inc()
        return run

    @contextlib.asynccontextmanager
    async def _run_lease(self, project_id: str, pipeline_name: str) -> AsyncIterator[None]:
        """One run per pipeline at a time across every process sharing the metadata database."""
        try:
            async with self.leases.held(run_lease(project_id, pipeline_name)):
                yield
        except LeaseHeld:
            raise PipelineBusy(
                f"pipeline {pipeline_name!r} is running already; run it again when that run has ended"
            ) from None

    async def _execute(
        self, instance: PipelineInstance, target: Target, statements: Sequence[Statement]
    ) -> tuple[RunStats, int]:
        """Run the checked code on its target and keep the pipeline's state. A SQL-target streaming
        pipeline first reads its topic from the stored offsets. Returns the figures and malformed
        messages."""
        async with self.runtime.database.sessions() as session:
            state = await session.get(PipelineState, (instance.project_id, instance.pipeline_name))
        offsets = dict(state.stream_offsets) if state else {}
        malformed = 0
        if any(statement.uses_batch for statement in statements):
            batch = await read_batch(instance.config, offsets)
            applied = await target.execute(statements, batch.payload)
            stats = dataclasses.replace(applied, rows_read=batch.messages)
            offsets, malformed = batch.next_offsets, batch.malformed
        else:
            stats = await target.execute(statements)
        async with self.runtime.database.transaction() as session:
            await session.merge(
                PipelineState(
                    project_id=instance.project_id,
                    pipeline_name=instance.pipeline_name,
                    high_watermark=stats.high_watermark or (state.high_watermark if state else None),
                    stream_offsets=offsets,
                    updated_at=utc_now(),
                )
            )
        return stats, malformed

    # --- self-healing ------------------------------------------------------------------------

    async def adapt(self, session: AsyncSession, event: DriftDetected) -> AdaptationOutcome:
        """New versions of the pipelines reading the drifted table, with the adapted column mapping;
        a scheduled one is also asked to run at once (trigger `drift`), so its target follows now."""
        generated: list[PipelinesGenerated] = []
        for instance in await store.latest_instances(
            session, event.project_id, source_system=event.connector_id
        ):
            if not _same_table(instance.source_object, event.table_name):
                continue
            try:
                config = adapt_config(instance.config, event.drifts)
                if config == instance.config:
                    continue
                template = await self.resolve_template(
                    session, event.project_id, instance.template_id, instance.template_version
                )
                ready, rendered = await self.prepare(
                    template,
                    config,
                    reason="drift_adaptation",
                    dialect=instance.dialect,
                    names=await self._names(session, instance),
                )
            except (CannotAdapt, InvalidConfig, TemplateError, NotFound) as error:
                log.warning("pipeline not adapted", pipeline=instance.pipeline_name, reason=str(error))
                continue
            saved = await self.save_instance(
                session,
                project_id=event.project_id,
                pipeline_name=instance.pipeline_name,
                template=template,
                config=ready,
                rendered=rendered,
                dialect=instance.dialect,
                connection=instance.connection,
                reason="drift_adaptation",
                drift_event_id=str(event.event_id),
            )
            if saved.created:
                generated.append(generated_event(saved.instance))
                await schedules.request_run(session, event.project_id, instance.pipeline_name, utc_now())
        return AdaptationOutcome(generated=generated)

    @staticmethod
    async def _names(session: AsyncSession, instance: PipelineInstance) -> PipelineNames:
        """The pipeline facts its template saw when it was rendered (the target table of a generated
        pipeline is its control entry's), so later checks and renders see the same."""
        entry = (
            await store.control_entry(session, instance.project_id, instance.control_entry_id)
            if instance.control_entry_id
            else None
        )
        return PipelineNames(
            instance.pipeline_name, instance.source_object, entry.target_object if entry else None
        )


def _builtin_row(template: BuiltinTemplate) -> TemplateVersion:
    version = SemVer.parse(template.version)
    return TemplateVersion(
        project_id=BUILTIN_SCOPE,
        template_id=template.template_id,
        version=template.version,
        major=version.major,
        minor=version.minor,
        patch=version.patch,
        pattern=template.pattern,
        category=template.category,
        dialect=template.dialect,
        description=template.description,
        config_schema=template.config_schema,
        code=template.code,
    )


def _same_table(source_object: str | None, table_name: str) -> bool:
    if source_object is None:
        return False
    return source_object == table_name or source_object.rpartition(".")[2] == table_name.rpartition(".")[2]


def entry_timing(row: ControlEntry) -> Timing | None:
    """The schedule of an enabled entry (None: not scheduled); InvalidSchedule for a bad one."""
    if not row.schedule or not row.enabled:
        return None
    return Timing(
        cron=Cron.parse(row.schedule, row.schedule_timezone or "UTC"),
        catch_up=row.catch_up,
        max_retries=row.max_retries,
        retry_backoff_seconds=row.retry_backoff_seconds,
    )


def control_spec(row: ControlEntry) -> ControlSpec:
    return ControlSpec(
        entry_id=row.id,
        source_system=row.source_system,
        source_object=row.source_object,
        target_system=row.target_system,
        target_object=row.target_object,
        template_id=row.template_id,
        load_type=row.load_type,
        watermark_column=row.watermark_column,
        keys=tuple(row.keys or ()),
        config=row.config or {},
    )


def generated_event(instance: PipelineInstance) -> PipelinesGenerated:
    return PipelinesGenerated(
        project_id=instance.project_id,
        instance_id=instance.instance_id,
        pipeline_name=instance.pipeline_name,
        template_id=instance.template_id,
        template_version=instance.template_version,
        instance_version=instance.version,
        reason=instance.reason,
        drift_event_id=uuid.UUID(instance.drift_event_id) if instance.drift_event_id else None,
    )


def run_metrics_event(run: PipelineRun) -> PipelineRunMetrics:
    return PipelineRunMetrics(
        project_id=run.project_id,
        pipeline_id=run.pipeline_name,
        run_id=run.run_id,
        status=run.status,
        started_at=run.started_at,
        ended_at=run.ended_at,
        duration_seconds=run.duration_seconds,
        rows_read=run.rows_read,
        rows_written=run.rows_written,
        error_count=run.error_count,
        cpu_percent=run.cpu_percent,
        memory_mb=run.memory_mb,
        error_message=run.error_message,
    )


def service_of(runtime: Runtime) -> TemplatesService:
    """The process-wide service, shared by the worker and the routes (every service's factory)."""
    return runtime.component(COMPONENT, lambda: TemplatesService(runtime))
