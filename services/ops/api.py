"""Operations routes under /api/v1/ops: what operators need to see and fix that the service APIs do
not answer. Project-scoped like every route (another project's data answers 404 or is left out);
what describes the whole platform (processes, lag) is for administrators."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError

from aietl.services.gateway.deps import (
    AdminDep,
    PrincipalDep,
    ProjectDep,
    RuntimeDep,
    SessionDep,
    require_role,
)
from aietl.services.gateway.roles import Role
from aietl.services.gateway.security import Principal
from aietl.services.gateway.tables import Membership
from aietl.services.ops import readers
from aietl.services.ops.tables import Heartbeat, Republication
from aietl.services.ops.topics import TopicRecord, read_one, read_tails
from aietl.services.runtime import WORKERS
from aietl.shared.bus import UNKNOWN_PROJECT
from aietl.shared.errors import Conflict, Invalid, NotFound, Unavailable
from aietl.shared.events import CONTRACTS, DeadLetter, Topic
from aietl.shared.events.base import utc_now

router = APIRouter(prefix="/ops", tags=["operations"])
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or expired bearer token"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "the project (or the named resource) does not exist or is not yours"}
}
UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"description": "a parameter or the body is invalid; the detail names it"}
}
BUS_DOWN: dict[int | str, dict[str, Any]] = {503: {"description": "the event bus does not answer"}}
ROLES = ("gateway", *WORKERS)
MAINTAINER_ROLES = frozenset({"owner", "maintainer", "admin"})
"""Membership roles that may republish dead letters of their project (administrators may anywhere)."""
Limit = Annotated[int, Query(ge=1, le=200, description="Newest records kept per topic partition.")]
TopicName = Annotated[str | None, Query(max_length=255, description="One topic; all when omitted.")]
ProjectFilter = Annotated[
    str | None, Query(max_length=64, description="One project; all of yours when omitted.")
]


# --- processes -----------------------------------------------------------------------------------


class PartitionLagOut(BaseModel):
    topic: str
    partition: int
    lag: int


class ProcessOut(BaseModel):
    role: str
    instance: str
    ready: bool
    stale: bool
    """No heartbeat for three periods: the process is gone or stuck."""
    checks: dict[str, str]
    lag: list[PartitionLagOut]
    started_at: datetime
    last_seen: datetime


class RoleOut(BaseModel):
    role: str
    status: str
    """ready (every live instance ready), not_ready, stale (only old heartbeats) or missing (none)."""
    instances: int
    last_seen: datetime | None


class TopicLagOut(BaseModel):
    topic: str
    group: str
    lag: int


class ProcessesOut(BaseModel):
    heartbeat_seconds: float
    roles: list[RoleOut]
    processes: list[ProcessOut]
    lag: list[TopicLagOut]
    """Per topic and consumer group, summed over the partitions of live instances."""


@router.get("/processes", response_model=ProcessesOut, responses={**UNAUTHORIZED, 403: {}})
async def processes(_admin: AdminDep, session: SessionDep, runtime: RuntimeDep) -> ProcessesOut:
    """Every worker and gateway process: ready or not, when last seen, its consumer lag (administrators)."""
    period = runtime.settings.heartbeat_seconds
    stale_before = utc_now() - timedelta(seconds=3 * period)
    rows = list(await session.scalars(select(Heartbeat).order_by(Heartbeat.role, Heartbeat.instance)))
    out = [ProcessOut(**_columns(row), stale=row.last_seen < stale_before) for row in rows]
    roles = []
    for role in (*ROLES, *sorted({p.role for p in out} - set(ROLES))):
        mine = [p for p in out if p.role == role]
        roles.append(
            RoleOut(
                role=role,
                status=role_status(mine),
                instances=sum(1 for p in mine if not p.stale),
                last_seen=max((p.last_seen for p in mine), default=None),
            )
        )
    totals: dict[tuple[str, str], int] = {}
    for process in out:
        if not process.stale:
            for item in process.lag:
                key = (item.topic, process.role)
                totals[key] = totals.get(key, 0) + item.lag
    lag = [TopicLagOut(topic=t, group=g, lag=n) for (t, g), n in sorted(totals.items())]
    return ProcessesOut(heartbeat_seconds=period, roles=roles, processes=out, lag=lag)


def role_status(instances: list[ProcessOut]) -> str:
    """missing: no process ever reported the role; stale: none has lately; ready: every live one is."""
    if not instances:
        return "missing"
    live = [p for p in instances if not p.stale]
    if not live:
        return "stale"
    return "ready" if all(p.ready for p in live) else "not_ready"


def _columns(row: Heartbeat) -> dict[str, Any]:
    return {
        name: getattr(row, name)
        for name in ("role", "instance", "ready", "checks", "lag", "started_at", "last_seen")
    }


# --- dead letters --------------------------------------------------------------------------------


class DeadLetterOut(BaseModel):
    dlq_topic: str
    partition: int
    offset: int
    project_id: str
    original_topic: str
    original_key: str | None
    original_partition: int | None
    original_offset: int | None
    consumer_group: str | None
    error_type: str
    reason: str
    attempts: int
    occurred_at: datetime
    original_value: str
    """The original bytes as text (UTF-8, undecodable bytes replaced); shown, never interpreted."""
    original_is_json: bool
    republished_by: str | None = None
    republished_at: datetime | None = None
    republished_event_id: str | None = None


class TopicLetters(BaseModel):
    topic: str
    dlq_topic: str
    letters: list[DeadLetterOut]


class DeadLettersOut(BaseModel):
    complete: bool
    """False when the bounded read stopped early (time or size): older letters may be missing."""
    topics: list[TopicLetters]


def _visible(principal: Principal, project_filter: str | None) -> frozenset[str] | None:
    """The projects whose records the caller may see here; None for every project (administrators).
    Letters whose project could not be read (`unknown`) are for administrators alone."""
    hidden = frozenset() if principal.is_admin else frozenset({UNKNOWN_PROJECT})
    if project_filter is not None:
        return frozenset({require_role(principal, project_filter, Role.viewer)}) - hidden
    return None if principal.is_admin else principal.projects - hidden


def _may_see(principal: Principal, project_id: str) -> bool:
    return principal.is_admin or (project_id != UNKNOWN_PROJECT and principal.can_access(project_id))


def _topics(topic: str | None) -> list[str]:
    if topic is None:
        return list(CONTRACTS)
    if topic not in CONTRACTS:
        raise Invalid(f"topic: unknown topic {topic!r}; one of {sorted(CONTRACTS)}", at="/query/topic")
    return [topic]


def _letter(record: TopicRecord) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(record.value)
    except ValidationError:
        return None


def _letter_out(record: TopicRecord, letter: DeadLetter) -> DeadLetterOut:
    original = letter.original_value()
    try:
        json.loads(original)
        is_json = True
    except ValueError:
        is_json = False
    return DeadLetterOut(
        dlq_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        project_id=letter.project_id,
        original_topic=letter.original_topic,
        original_key=letter.original_key,
        original_partition=letter.original_partition,
        original_offset=letter.original_offset,
        consumer_group=letter.consumer_group,
        error_type=letter.error_type,
        reason=letter.reason,
        attempts=letter.attempts,
        occurred_at=letter.occurred_at,
        original_value=original.decode("utf-8", errors="replace"),
        original_is_json=is_json,
    )


async def _bus(work: Any) -> Any:
    try:
        return await work
    except Exception as error:
        raise Unavailable(f"event bus unavailable: {type(error).__name__}") from error


@router.get(
    "/dead-letters",
    response_model=DeadLettersOut,
    responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE, **BUS_DOWN},
)
async def dead_letters(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    project_id: ProjectFilter = None,
    topic: TopicName = None,
    limit: Limit = 50,
) -> DeadLettersOut:
    """The newest dead letters of each topic (read from `<topic>.dlq`), newest first, with their reasons
    and original values; only your projects' letters (administrators: every one)."""
    visible = _visible(principal, project_id)
    topics = _topics(topic)
    tail = await _bus(read_tails(runtime.settings, [Topic.dlq(t) for t in topics], limit))
    found: dict[str, list[DeadLetterOut]] = {t: [] for t in topics}
    for record in tail.records:
        letter = _letter(record)
        if letter is None or (visible is not None and letter.project_id not in visible):
            continue
        out = _letter_out(record, letter)
        found[record.topic.removesuffix(".dlq")].append(out)
    await _mark_republished(session, [letter for letters in found.values() for letter in letters])
    return DeadLettersOut(
        complete=tail.complete,
        topics=[
            TopicLetters(
                topic=t,
                dlq_topic=Topic.dlq(t),
                letters=sorted(found.get(t, []), key=lambda x: (x.occurred_at, x.offset), reverse=True),
            )
            for t in topics
        ],
    )


async def _mark_republished(session: Any, letters: list[DeadLetterOut]) -> None:
    if not letters:
        return
    keys = [(x.dlq_topic, x.partition, x.offset) for x in letters]
    rows = await session.scalars(
        select(Republication).where(
            tuple_(Republication.dlq_topic, Republication.dlq_partition, Republication.dlq_offset).in_(keys)
        )
    )
    done = {(r.dlq_topic, r.dlq_partition, r.dlq_offset): r for r in rows}
    for letter in letters:
        row = done.get((letter.dlq_topic, letter.partition, letter.offset))
        if row is not None:
            letter.republished_by = row.republished_by
            letter.republished_at = row.republished_at
            letter.republished_event_id = row.event_id


class RepublishIn(BaseModel):
    event: dict[str, Any] = Field(
        description="The corrected event, as the original topic's contract (see docs/contracts)."
    )


class RepublishOut(BaseModel):
    topic: str
    project_id: str
    event_id: str


async def _may_maintain(session: Any, principal: Principal, project_id: str) -> bool:
    if principal.is_admin:
        return True
    role = await session.scalar(
        select(Membership.role).where(
            Membership.user_id == principal.user_id, Membership.project_id == project_id
        )
    )
    return role in MAINTAINER_ROLES


@router.post(
    "/dead-letters/{dlq_topic}/{partition}/{offset}/republish",
    response_model=RepublishOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **UNAUTHORIZED,
        403: {"description": "a maintainer of the letter's project (or an administrator) may republish"},
        404: {"description": "no such dead letter, or not one of your projects'"},
        409: {"description": "this letter was republished already"},
        **UNPROCESSABLE,
        **BUS_DOWN,
    },
)
async def republish(
    dlq_topic: Annotated[str, Path(max_length=255)],
    partition: Annotated[int, Path(ge=0, le=100_000)],
    offset: Annotated[int, Path(ge=0, le=2**63 - 1)],
    body: RepublishIn,
    principal: PrincipalDep,
    runtime: RuntimeDep,
) -> RepublishOut:
    """Publish a corrected dead letter to its original topic (through the outbox, once it commits).
    The event must satisfy the topic's contract and stay in the letter's project."""
    original_topic = dlq_topic.removesuffix(".dlq")
    missing = NotFound(f"dead letter {dlq_topic}/{partition}/{offset} not found")
    if not dlq_topic.endswith(".dlq") or original_topic not in CONTRACTS:
        raise missing
    record = await _bus(read_one(runtime.settings, dlq_topic, partition, offset))
    letter = None if record is None else _letter(record)
    if letter is None or not _may_see(principal, letter.project_id):
        raise missing
    contract = CONTRACTS[original_topic]
    try:
        event = contract.model_validate(body.event)
    except ValidationError as error:
        raise Invalid.of_fields(error.errors(include_input=False), "body", "event") from None
    # a letter whose project could not be read goes to the project an administrator names
    if letter.project_id != UNKNOWN_PROJECT and event.project_id != letter.project_id:
        raise Invalid(f"event.project_id: must stay {letter.project_id!r}", at="/body/event/project_id")
    async with runtime.database.transaction() as session:
        if not await _may_maintain(session, principal, event.project_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail="republishing needs the maintainer role in the project"
            )
        session.add(
            Republication(
                dlq_topic=dlq_topic,
                dlq_partition=partition,
                dlq_offset=offset,
                project_id=event.project_id,
                original_topic=original_topic,
                event_id=str(event.event_id),
                republished_by=principal.username,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"dead letter {dlq_topic}/{partition}/{offset} was republished already") from None
        runtime.outbox.enqueue(session, [event])
    return RepublishOut(topic=original_topic, project_id=event.project_id, event_id=str(event.event_id))


# --- recent events -------------------------------------------------------------------------------


class EventOut(BaseModel):
    partition: int
    offset: int
    timestamp: datetime
    key: str | None
    project_id: str | None
    event_id: str | None
    value: str
    """The event as text (truncated beyond `MAX_SHOWN_BYTES`)."""


class TopicEvents(BaseModel):
    topic: str
    events: list[EventOut]


class EventsOut(BaseModel):
    complete: bool
    topics: list[TopicEvents]


MAX_SHOWN_BYTES = 16_384


@router.get(
    "/events", response_model=EventsOut, responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE, **BUS_DOWN}
)
async def recent_events(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    project_id: ProjectFilter = None,
    topic: TopicName = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Newest events kept per topic.")] = 20,
) -> EventsOut:
    """The newest events of each topic, newest first; only your projects' (administrators: every one)."""
    visible = _visible(principal, project_id)
    topics = _topics(topic)
    tail = await _bus(read_tails(runtime.settings, topics, limit))
    found: dict[str, list[EventOut]] = {t: [] for t in topics}
    for record in tail.records:
        fields = _fields(record.value)
        project = fields.get("project_id") if isinstance(fields.get("project_id"), str) else None
        if visible is not None and project not in visible:
            continue
        event_id = fields.get("event_id")
        found[record.topic].append(
            EventOut(
                partition=record.partition,
                offset=record.offset,
                timestamp=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
                key=record.key.decode("utf-8", errors="replace") if record.key is not None else None,
                project_id=project,
                event_id=event_id if isinstance(event_id, str) else None,
                value=record.value[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace"),
            )
        )
    return EventsOut(
        complete=tail.complete,
        topics=[
            TopicEvents(
                topic=t, events=sorted(found[t], key=lambda e: (e.timestamp, e.offset), reverse=True)[:limit]
            )
            for t in topics
        ],
    )


def _fields(value: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --- summaries the console draws -----------------------------------------------------------------


@router.get(
    "/drift/diff", response_model=readers.SchemaDiff, responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE}
)
async def drift_diff(
    project_id: ProjectDep,
    session: SessionDep,
    connector_id: Annotated[str, Query(min_length=1, max_length=255)],
    table_name: Annotated[str, Query(min_length=1, max_length=255)],
    from_version: Annotated[int, Query(ge=1)],
    to_version: Annotated[int, Query(ge=1)],
) -> readers.SchemaDiff:
    """Two baseline versions of a table side by side and the drifts from one to the other
    (renames as renames, type changes as widening or narrowing, each with its severity)."""
    diff = await readers.schema_diff(session, project_id, connector_id, table_name, from_version, to_version)
    if diff is None:
        raise NotFound(f"table {connector_id}/{table_name} has no versions {from_version} and {to_version}")
    return diff


@router.get(
    "/features/freshness",
    response_model=readers.FreshnessOut,
    responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE},
)
async def feature_freshness(
    project_id: ProjectDep, session: SessionDep, runtime: RuntimeDep
) -> readers.FreshnessOut:
    """Per feature version: how many values the offline store holds and how old the newest is,
    against its TTL."""
    return await readers.feature_freshness(runtime, session, project_id)


@router.get(
    "/pipeline-runs",
    response_model=readers.RunsSummary,
    responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE},
)
async def pipeline_runs(
    project_id: ProjectDep,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=365, description="How far back.")] = 30,
) -> readers.RunsSummary:
    """The pipelines with run metrics in the project (runs, failures, last run) and its cost per day."""
    return await readers.runs_summary(runtime, project_id, days)


@router.get(
    "/pipeline-runs/{pipeline_id}",
    response_model=readers.PipelineProfile,
    responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE},
)
async def pipeline_profile(
    pipeline_id: Annotated[str, Path(max_length=255)],
    project_id: ProjectDep,
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> readers.PipelineProfile:
    """A pipeline's newest runs and its week: runs and expected maintenance impact per hour of the
    week (what the recommended maintenance window minimises)."""
    profile = await readers.pipeline_profile(runtime, project_id, pipeline_id, days)
    if profile is None:
        raise NotFound(f"no runs of pipeline {pipeline_id!r}")
    return profile


@router.get(
    "/vectors/collections",
    response_model=readers.CollectionsOut,
    responses={**UNAUTHORIZED, **NOT_FOUND, **UNPROCESSABLE},
)
async def vector_collections(
    project_id: ProjectDep, principal: PrincipalDep, session: SessionDep
) -> readers.CollectionsOut:
    """Ingestion status per connector and collection: documents, chunks, chunks of unfinished runs,
    and cache hits (chunks whose vector came from the embedding cache at their document's last
    ingest) with the hit rate; the embedding cache's size per model for administrators (it is
    shared by every project)."""
    return await readers.collections(session, project_id, include_cache=principal.is_admin)
