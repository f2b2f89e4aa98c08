"""Feature registry in the SQL database: entities, views, feature versions, lineage, watermarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.features.domain import (
    FeatureError,
    FeatureSpec,
    FeatureType,
    StorageType,
    UnknownFeature,
    check_name,
    definition_hash,
    parse_ref,
)
from aietl.services.features.on_demand import compile_expression, registered_transform
from aietl.services.features.tables import Entity, FeatureVersion, FeatureView, Materialization
from aietl.shared.events.base import utc_now


@dataclass(frozen=True)
class FeatureDefinition:
    """A feature as registered (the seed's fields plus its view and lineage)."""

    name: str
    feature_type: FeatureType
    entity: str
    ttl_seconds: int
    storage_type: StorageType = "both"
    view: str | None = None  # defaults to the entity's name
    source: str = ""
    pipeline_id: str | None = None
    description: str = ""

    def semantics(self, view: str) -> dict[str, Any]:
        """What makes a new version when it changes (description and owner do not)."""
        return {
            "feature_type": self.feature_type.value,
            "entity": self.entity,
            "view": view,
            "source": self.source,
            "pipeline_id": self.pipeline_id,
            "storage_type": self.storage_type,
            "ttl_seconds": self.ttl_seconds,
        }


@dataclass(frozen=True)
class ViewDefinition:
    name: str
    entity: str
    ttl_seconds: int
    features: list[tuple[str, FeatureType, str]]  # (name, type, description)
    source: str = ""
    pipeline_id: str | None = None
    storage_type: StorageType = "both"
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class OnDemandDefinition:
    """Outputs computed at read time: `expressions` (name -> expression) or a registered `transform`."""

    name: str
    inputs: list[str]  # feature refs
    outputs: dict[str, FeatureType]
    expressions: dict[str, str] = field(default_factory=dict)
    transform: str | None = None
    request_schema: dict[str, FeatureType] = field(default_factory=dict)
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


async def _ensure_entity(session: AsyncSession, project: str, name: str) -> None:
    check_name("entity", name)
    exists = await session.scalar(select(Entity.id).where(Entity.project_id == project, Entity.name == name))
    if exists is None:
        session.add(Entity(project_id=project, name=name))
        await session.flush()


async def _view(session: AsyncSession, project: str, name: str) -> FeatureView | None:
    return await session.scalar(
        select(FeatureView).where(FeatureView.project_id == project, FeatureView.name == name)
    )


async def latest_version(session: AsyncSession, project: str, name: str) -> FeatureVersion | None:
    return await session.scalar(
        select(FeatureVersion)
        .where(FeatureVersion.project_id == project, FeatureVersion.name == name)
        .order_by(FeatureVersion.version.desc())
        .limit(1)
    )


async def register_feature(
    session: AsyncSession, project: str, definition: FeatureDefinition, *, owner: str = ""
) -> tuple[FeatureVersion, bool]:
    """Register one feature; returns (its current version, whether a new version was made)."""
    check_name("feature", definition.name)
    if definition.ttl_seconds < 1:
        raise FeatureError("ttl_seconds must be at least 1")
    view_name = check_name("feature view", definition.view or definition.entity)
    await _ensure_entity(session, project, definition.entity)
    view = await _view(session, project, view_name)
    if view is None:
        view = FeatureView(
            project_id=project,
            name=view_name,
            entity=definition.entity,
            source=definition.source,
            pipeline_id=definition.pipeline_id,
            ttl_seconds=definition.ttl_seconds,
            owner=owner,
            tags={},
        )
        session.add(view)
    elif view.kind != "batch":
        raise FeatureError(f"feature view {view_name!r} is on-demand; stored features need another view")
    elif view.entity != definition.entity:
        raise FeatureError(
            f"feature view {view_name!r} belongs to entity {view.entity!r}, not {definition.entity!r}"
        )
    if await _on_demand_output_view(session, project, definition.name) is not None:
        raise FeatureError(f"feature {definition.name!r} is already an on-demand output")
    digest = definition_hash(definition.semantics(view_name))
    latest = await latest_version(session, project, definition.name)
    if latest is not None and latest.definition_hash == digest:
        latest.description = definition.description or latest.description
        return latest, False
    version = FeatureVersion(
        project_id=project,
        name=definition.name,
        version=1 if latest is None else latest.version + 1,
        feature_type=definition.feature_type.value,
        entity=definition.entity,
        view=view_name,
        source=definition.source,
        pipeline_id=definition.pipeline_id,
        storage_type=definition.storage_type,
        ttl_seconds=definition.ttl_seconds,
        description=definition.description,
        definition_hash=digest,
    )
    session.add(version)
    await session.flush()
    return version, True


async def register_view(
    session: AsyncSession, project: str, definition: ViewDefinition
) -> list[FeatureVersion]:
    """A view and its features; the view's metadata (owner, tags, description) is updated in place."""
    check_name("feature view", definition.name)
    if not definition.features:
        raise FeatureError("features must list at least one feature")
    versions = [
        (
            await register_feature(
                session,
                project,
                FeatureDefinition(
                    name=name,
                    feature_type=feature_type,
                    entity=definition.entity,
                    ttl_seconds=definition.ttl_seconds,
                    storage_type=definition.storage_type,
                    view=definition.name,
                    source=definition.source,
                    pipeline_id=definition.pipeline_id,
                    description=description,
                ),
                owner=definition.owner,
            )
        )[0]
        for name, feature_type, description in definition.features
    ]
    view = await _view(session, project, definition.name)
    assert view is not None  # created by register_feature
    view.source, view.pipeline_id, view.ttl_seconds = (
        definition.source,
        definition.pipeline_id,
        definition.ttl_seconds,
    )
    view.owner, view.tags, view.description = definition.owner, dict(definition.tags), definition.description
    view.updated_at = utc_now()
    return versions


async def register_on_demand(
    session: AsyncSession, project: str, definition: OnDemandDefinition
) -> FeatureView:
    check_name("feature view", definition.name)
    if not definition.outputs:
        raise FeatureError("outputs must name at least one feature")
    if definition.transform is None:
        missing = sorted(set(definition.outputs) - set(definition.expressions))
        if missing:
            raise FeatureError(f"expressions missing for outputs {missing}")
        allowed = {parse_ref(ref).name for ref in definition.inputs} | set(definition.request_schema)
        for output, source in definition.expressions.items():
            unknown = compile_expression(source).names - allowed
            if unknown:
                raise FeatureError(
                    f"expression of {output!r} reads {sorted(unknown)}: not inputs nor request fields"
                )
    else:
        registered_transform(definition.transform)
    specs = await resolve(session, project, definition.inputs) if definition.inputs else []
    entities = {spec.entity for spec in specs}
    if len(entities) > 1:
        raise FeatureError(f"inputs span several entities {sorted(entities)}")
    for output in definition.outputs:
        check_name("feature", output)
        if await latest_version(session, project, output) is not None:
            raise FeatureError(f"output {output!r} is already a stored feature")
        other = await _on_demand_output_view(session, project, output)
        if other is not None and other.name != definition.name:
            raise FeatureError(f"output {output!r} is already produced by on-demand view {other.name!r}")
    view = await _view(session, project, definition.name)
    if view is None:
        view = FeatureView(project_id=project, name=definition.name, kind="on_demand", ttl_seconds=0)
        session.add(view)
    elif view.kind != "on_demand":
        raise FeatureError(f"feature view {definition.name!r} already exists as a stored view")
    view.entity = next(iter(entities), "")
    view.inputs = [str(spec_ref) for spec_ref in definition.inputs]
    view.request_schema = {name: kind.value for name, kind in definition.request_schema.items()}
    view.outputs = {
        name: {"feature_type": kind.value, "expression": definition.expressions.get(name)}
        for name, kind in definition.outputs.items()
    }
    view.transform = definition.transform
    view.owner, view.tags, view.description = definition.owner, dict(definition.tags), definition.description
    view.updated_at = utc_now()
    await session.flush()
    return view


async def _on_demand_output_view(session: AsyncSession, project: str, name: str) -> FeatureView | None:
    views = await session.scalars(
        select(FeatureView).where(FeatureView.project_id == project, FeatureView.kind == "on_demand")
    )
    return next((view for view in views if name in view.outputs), None)


def spec_of(row: FeatureVersion) -> FeatureSpec:
    return FeatureSpec(
        name=row.name,
        version=row.version,
        feature_type=FeatureType(row.feature_type),
        entity=row.entity,
        view=row.view,
        storage_type=row.storage_type,
        ttl_seconds=row.ttl_seconds,
    )


async def resolve(session: AsyncSession, project: str, refs: list[str]) -> list[FeatureSpec]:
    """Specs of stored features, in order; UnknownFeature names every reference that does not exist."""
    parsed = [parse_ref(ref) for ref in refs]
    names = {ref.name for ref in parsed}
    rows = (
        await session.scalars(
            select(FeatureVersion).where(FeatureVersion.project_id == project, FeatureVersion.name.in_(names))
        )
    ).all()
    by_key = {(row.name, row.version): row for row in rows}
    latest: dict[str, FeatureVersion] = {}
    for row in rows:
        if row.name not in latest or row.version > latest[row.name].version:
            latest[row.name] = row
    found: list[FeatureSpec] = []
    missing: list[str] = []
    for ref in parsed:
        chosen = latest.get(ref.name) if ref.version is None else by_key.get((ref.name, ref.version))
        if chosen is None:
            missing.append(str(ref))
        else:
            found.append(spec_of(chosen))
    if missing:
        raise UnknownFeature(f"unknown features: {', '.join(missing)}")
    return found


async def on_demand_views(session: AsyncSession, project: str) -> list[FeatureView]:
    return list(
        await session.scalars(
            select(FeatureView).where(FeatureView.project_id == project, FeatureView.kind == "on_demand")
        )
    )


async def features(session: AsyncSession, project: str) -> list[FeatureVersion]:
    """The latest version of every stored feature."""
    newest = (
        select(FeatureVersion.name, func.max(FeatureVersion.version).label("version"))
        .where(FeatureVersion.project_id == project)
        .group_by(FeatureVersion.name)
        .subquery()
    )
    return list(
        await session.scalars(
            select(FeatureVersion)
            .join(
                newest, (FeatureVersion.name == newest.c.name) & (FeatureVersion.version == newest.c.version)
            )
            .where(FeatureVersion.project_id == project)
            .order_by(FeatureVersion.name)
        )
    )


async def versions(session: AsyncSession, project: str, name: str) -> list[FeatureVersion]:
    return list(
        await session.scalars(
            select(FeatureVersion)
            .where(FeatureVersion.project_id == project, FeatureVersion.name == name)
            .order_by(FeatureVersion.version)
        )
    )


async def views(session: AsyncSession, project: str) -> list[FeatureView]:
    return list(
        await session.scalars(
            select(FeatureView).where(FeatureView.project_id == project).order_by(FeatureView.name)
        )
    )


async def view(session: AsyncSession, project: str, name: str) -> FeatureView | None:
    return await _view(session, project, name)


async def view_features(session: AsyncSession, project: str, view_name: str) -> list[FeatureVersion]:
    return [row for row in await features(session, project) if row.view == view_name]


async def consumers_of(session: AsyncSession, project: str, name: str) -> list[str]:
    """On-demand views that read `name` (downstream lineage)."""
    return [
        v.name
        for v in await on_demand_views(session, project)
        if name in {parse_ref(i).name for i in v.inputs}
    ]


async def watermark(session: AsyncSession, project: str, view_name: str) -> Materialization:
    mark = await session.get(Materialization, (project, view_name))
    if mark is None:
        mark = Materialization(project_id=project, view=view_name, watermark=0)
        session.add(mark)
    return mark
