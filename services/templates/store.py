"""Queries of the templates tables; every read is scoped to one project (plus the built-ins)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.templates.domain.model import BUILTIN_SCOPE
from aietl.services.templates.tables import ControlEntry, PipelineInstance, PipelineRun, TemplateVersion


async def template_versions(
    session: AsyncSession, project_id: str, template_id: str | None = None, pattern: str | None = None
) -> Sequence[TemplateVersion]:
    query = select(TemplateVersion).where(TemplateVersion.project_id.in_((project_id, BUILTIN_SCOPE)))
    if template_id is not None:
        query = query.where(TemplateVersion.template_id == template_id)
    if pattern is not None:
        query = query.where(TemplateVersion.pattern == pattern)
    order = (TemplateVersion.template_id, TemplateVersion.major, TemplateVersion.minor, TemplateVersion.patch)
    return (await session.scalars(query.order_by(*order))).all()


async def usage(session: AsyncSession, project_id: str) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(scope, template_id, version) -> (instances, runs) within the project."""
    instances = await session.execute(
        select(
            PipelineInstance.template_scope,
            PipelineInstance.template_id,
            PipelineInstance.template_version,
            func.count(),
        )
        .where(PipelineInstance.project_id == project_id)
        .group_by(
            PipelineInstance.template_scope, PipelineInstance.template_id, PipelineInstance.template_version
        )
    )
    runs = await session.execute(
        select(
            PipelineRun.template_scope, PipelineRun.template_id, PipelineRun.template_version, func.count()
        )
        .where(PipelineRun.project_id == project_id)
        .group_by(PipelineRun.template_scope, PipelineRun.template_id, PipelineRun.template_version)
    )
    counts: dict[tuple[str, str, str], tuple[int, int]] = {}
    for scope, template_id, version, count in instances:
        counts[(scope, template_id, version)] = (count, 0)
    for scope, template_id, version, count in runs:
        counts[(scope, template_id, version)] = (counts.get((scope, template_id, version), (0, 0))[0], count)
    return counts


async def control_entries(
    session: AsyncSession, project_id: str, *, enabled_only: bool = False
) -> Sequence[ControlEntry]:
    query = select(ControlEntry).where(ControlEntry.project_id == project_id)
    if enabled_only:
        query = query.where(ControlEntry.enabled.is_(True))
    return (await session.scalars(query.order_by(ControlEntry.run_order, ControlEntry.created_at))).all()


async def control_entry(session: AsyncSession, project_id: str, entry_id: str) -> ControlEntry | None:
    return await session.scalar(
        select(ControlEntry).where(ControlEntry.project_id == project_id, ControlEntry.id == entry_id)
    )


async def latest_instance(
    session: AsyncSession, project_id: str, pipeline_name: str
) -> PipelineInstance | None:
    return await session.scalar(
        select(PipelineInstance)
        .where(PipelineInstance.project_id == project_id, PipelineInstance.pipeline_name == pipeline_name)
        .order_by(PipelineInstance.version.desc())
        .limit(1)
    )


async def instance_versions(
    session: AsyncSession, project_id: str, instance_id: str
) -> Sequence[PipelineInstance]:
    return (
        await session.scalars(
            select(PipelineInstance)
            .where(PipelineInstance.project_id == project_id, PipelineInstance.instance_id == instance_id)
            .order_by(PipelineInstance.version)
        )
    ).all()


async def latest_instances(
    session: AsyncSession,
    project_id: str,
    *,
    source_system: str | None = None,
    source_object: str | None = None,
) -> list[PipelineInstance]:
    """The newest version of each pipeline of the project, optionally those reading one source."""
    newest = (
        select(PipelineInstance.pipeline_name, func.max(PipelineInstance.version).label("version"))
        .where(PipelineInstance.project_id == project_id)
        .group_by(PipelineInstance.pipeline_name)
        .subquery()
    )
    query = select(PipelineInstance).join(
        newest,
        (PipelineInstance.pipeline_name == newest.c.pipeline_name)
        & (PipelineInstance.version == newest.c.version),
    )
    query = query.where(PipelineInstance.project_id == project_id)
    if source_system is not None:
        query = query.where(PipelineInstance.source_system == source_system)
    if source_object is not None:
        query = query.where(PipelineInstance.source_object == source_object)
    return list((await session.scalars(query.order_by(PipelineInstance.pipeline_name))).all())


async def runs(
    session: AsyncSession, project_id: str, instance_id: str, limit: int = 100
) -> Sequence[PipelineRun]:
    return (
        await session.scalars(
            select(PipelineRun)
            .where(PipelineRun.project_id == project_id, PipelineRun.instance_id == instance_id)
            .order_by(PipelineRun.started_at.desc())
            .limit(limit)
        )
    ).all()
