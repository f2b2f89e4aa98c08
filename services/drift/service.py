"""The drift use cases, shared by the worker and the REST routes: observe, adapt, unblock, set policy.

Each function works inside the caller's transaction, so the worker's exactly-once marker and the
effects it records commit together.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.drift import store
from aietl.services.drift.domain import (
    STATUS_OF,
    Column,
    columns_from_stored,
    columns_of,
    complete,
    decide,
    detect,
    policy_scopes,
    schema_hash,
)
from aietl.services.drift.domain.adapt import apply_drifts
from aietl.services.drift.tables import AuditRecord, Block, Detection, SchemaVersion
from aietl.shared import metrics
from aietl.shared.errors import Conflict, Invalid, NotFound
from aietl.shared.events import DriftDetected, SchemaObserved
from aietl.shared.events.base import utc_now
from aietl.shared.events.schema import Drift, Severity, Strategy

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TableRef:
    project_id: str
    connector_id: str
    table_name: str


@dataclass(slots=True)
class NewDetection:
    """A detection this observation recorded, as the plain row it was inserted as (building ORM
    objects cost the worker more than the database did); it reads like a `Detection`."""

    id: str
    project_id: str
    connector_id: str
    table_name: str
    observed_event_id: str
    dialect: str
    baseline_version: int
    new_version: int | None
    before_hash: str
    after_hash: str
    observed_columns: list[dict[str, Any]]
    drifts: list[dict[str, Any]]
    strategy: Strategy
    status: str
    decided_by: str
    created_at: datetime
    analysis: str | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _DETECTION_COLUMNS}


_DETECTION_COLUMNS = tuple(column.key for column in Detection.__table__.columns)


@dataclass
class Outcome:
    """What one observation led to. `detection` is None when there was nothing to decide."""

    baseline_version: int
    detection: Detection | NewDetection | None = None
    is_new: bool = False
    created_baseline: bool = False
    drifts: list[Drift] = field(default_factory=list)

    def output(self) -> DriftDetected | None:
        """The `drift.detected` to publish: only a new detection has one (built from the drifts
        in hand, not re-validated from their stored JSON)."""
        if self.detection is None or not self.is_new:
            return None
        return _event(self.detection, uuid.UUID(self.detection.id), self.drifts)


def _audit_row(
    subject: Any,
    action: str,
    actor: str,
    *,
    detection_id: str | None = None,
    strategy: str | None = None,
    before_hash: str | None = None,
    after_hash: str | None = None,
    drifts: list[dict[str, Any]] | None = None,
    detail: str = "",
) -> dict[str, Any]:
    """An audit row naming every column, so that rows of one batch go in one executemany."""
    return {
        "project_id": subject.project_id,
        "connector_id": subject.connector_id,
        "table_name": subject.table_name,
        "detection_id": detection_id,
        "action": action,
        "actor": actor,
        "strategy": strategy,
        "before_hash": before_hash,
        "after_hash": after_hash,
        "drifts": drifts if drifts is not None else [],
        "detail": detail,
        "created_at": utc_now(),
    }


async def _audit(session: AsyncSession, subject: Any, action: str, actor: str, **values: Any) -> None:
    await store.insert_rows(session, AuditRecord, [_audit_row(subject, action, actor, **values)])


def _version_row(
    subject: Any, version: int, digest: str, columns: list[dict[str, Any]], event_id: str
) -> dict[str, Any]:
    return {
        "project_id": subject.project_id,
        "connector_id": subject.connector_id,
        "table_name": subject.table_name,
        "version": version,
        "schema_hash": digest,
        "columns": columns,
        "observed_event_id": event_id,
        "created_at": utc_now(),
    }


async def resolve_policy(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str
) -> dict[Severity, Strategy]:
    """The most specific policy set for the table, completed by the built-in default."""
    return _policy_for(await store.policies_of(session, {project_id}), (project_id, connector_id, table_name))


def _policy_for(
    policies: dict[store.TableKey, dict[str, Any]], key: store.TableKey
) -> dict[Severity, Strategy]:
    project_id, connector_id, table_name = key
    for scope in policy_scopes(connector_id, table_name):
        if (project_id, *scope) in policies:
            return complete(policies[(project_id, *scope)])  # type: ignore[arg-type]
    return complete({})


@dataclass(slots=True)
class _Baseline:
    """A table's current version; its columns are parsed on first use, or handed over already
    parsed when this batch created the version."""

    version: int
    schema_hash: str
    stored: list[dict[str, Any]]
    parsed: list[Column] | None = None

    def columns(self) -> list[Column]:
        if self.parsed is None:
            self.parsed = columns_from_stored(self.stored)
        return self.parsed


@dataclass
class _TableState:
    """What deciding about one table needs, loaded once per batch and kept current while it runs.
    Policy, block and open detections are loaded only for a table that can change in the batch."""

    latest: _Baseline | None
    policy: dict[Severity, Strategy] = field(default_factory=dict)
    blocked: bool = False
    # undecided detections by (baseline version, observed hash)
    open: dict[tuple[int, str], Detection | NewDetection] = field(default_factory=dict)


@dataclass
class _Writes:
    """Every row a batch adds, inserted table by table (in order) once the batch is decided."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    detections: list[NewDetection] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    async def insert(self, session: AsyncSession) -> None:
        await store.insert_rows(session, SchemaVersion, self.versions)
        await store.insert_rows(session, Detection, [detection.row() for detection in self.detections])
        await store.insert_rows(session, Block, self.blocks)
        await store.insert_rows(session, AuditRecord, self.audit)


async def _load_states(
    session: AsyncSession, events: Sequence[SchemaObserved], digests: Sequence[str]
) -> dict[store.TableKey, _TableState]:
    """One query for the baselines; three more only if some table can change, i.e. it was observed
    in a shape other than its baseline's (a batch of repeats, the usual case, needs one)."""
    shapes: dict[store.TableKey, set[str]] = defaultdict(set)
    for event, digest in zip(events, digests, strict=True):
        shapes[(event.project_id, event.connector_id, event.table_name)].add(digest)
    latest = await store.latest_versions(session, shapes.keys())
    states = {}
    for key, seen in shapes.items():
        row = latest.get(key)
        if row is None:
            states[key] = _TableState(None)
        else:
            states[key] = _TableState(_Baseline(row.version, row.schema_hash, row.columns))
            seen.add(row.schema_hash)
    changing = [key for key, seen in shapes.items() if len(seen) > 1]
    if changing:
        blocked = await store.blocked(session, changing)
        policies = await store.policies_of(session, {project for project, _, _ in changing})
        for key in changing:
            states[key].policy = _policy_for(policies, key)
            states[key].blocked = key in blocked
        for detection in await store.open_detections(session, changing):
            key = (detection.project_id, detection.connector_id, detection.table_name)
            states[key].open.setdefault((detection.baseline_version, detection.after_hash), detection)
    return states


async def observe(session: AsyncSession, event: SchemaObserved, actor: str) -> Outcome:
    """One observation (see `observe_many`)."""
    return (await observe_many(session, [event], actor))[0]


async def observe_many(
    session: AsyncSession, events: Sequence[SchemaObserved], default_actor: str
) -> list[Outcome]:
    """Compare observations with their baselines, decide by policy, record everything, in order.

    A handful of queries load the state of every table involved and one `INSERT` per table writes
    the rows of all of them, whatever the number of events; the caller's transaction commits them.
    Parsing and detection of large observations run in a worker thread, so a 10,000-column table
    does not stall the event loop (the gateway's other requests, the worker's heartbeats).
    Raises `InvalidSchemaError` (naming the field) for a schema that cannot be understood."""
    parsed, digests = await _off_the_loop_if_large(events, _parse_all, events)
    states = await _load_states(session, events, digests)
    writes = _Writes()

    def decide_all() -> list[Outcome]:
        outcomes = []
        for event, columns, digest in zip(events, parsed, digests, strict=True):
            state = states[(event.project_id, event.connector_id, event.table_name)]
            actor = event.observed_by or default_actor
            outcomes.append(_observe(writes, event, columns, digest, actor, state))
        return outcomes

    outcomes = await _off_the_loop_if_large(events, decide_all)
    await writes.insert(session)
    return outcomes


INLINE_COLUMNS = 2_000  # fewer columns in a call are handled on the loop: a thread hop costs more


async def _off_the_loop_if_large(events: Sequence[SchemaObserved], work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a worker thread when the events are large, so that the event loop keeps
    serving; inline for small ones (a hop to a thread and back costs more than they do)."""
    if sum(len(event.columns) for event in events) < INLINE_COLUMNS:
        return work(*args)
    return await asyncio.to_thread(work, *args)


def _parse_all(events: Sequence[SchemaObserved]) -> tuple[list[list[Column]], list[str]]:
    parsed = [columns_of(event.columns, event.dialect) for event in events]
    return parsed, [schema_hash(columns) for columns in parsed]


def _observe(
    writes: _Writes,
    event: SchemaObserved,
    columns: list[Column],
    digest: str,
    actor: str,
    state: _TableState,
) -> Outcome:
    latest = state.latest
    event_id = str(event.event_id)
    if latest is None:
        stored_columns = [column.stored() for column in columns]
        writes.versions.append(_version_row(event, 1, digest, stored_columns, event_id))
        state.latest = _Baseline(1, digest, stored_columns, columns)
        writes.audit.append(
            _audit_row(event, "baseline_created", actor, after_hash=digest, detail="first observation")
        )
        return Outcome(baseline_version=1, created_baseline=True)
    if latest.schema_hash == digest:
        return Outcome(baseline_version=latest.version)
    existing = state.open.get((latest.version, digest))
    if existing is not None:
        return Outcome(latest.version, existing, drifts=[Drift.model_validate(d) for d in existing.drifts])
    drifts = detect(latest.columns(), columns, event.dialect)
    strategy = "fail" if state.blocked else decide(drifts, state.policy)  # blocked stays blocked
    stored_columns = [column.stored() for column in columns]
    detection = NewDetection(
        id=str(uuid.uuid4()),
        project_id=event.project_id,
        connector_id=event.connector_id,
        table_name=event.table_name,
        observed_event_id=event_id,
        dialect=event.dialect,
        baseline_version=latest.version,
        new_version=None,
        before_hash=latest.schema_hash,
        after_hash=digest,
        observed_columns=stored_columns,
        drifts=[d.model_dump(mode="json") for d in drifts],
        strategy=strategy,
        status=STATUS_OF[strategy],
        decided_by="policy",
        created_at=utc_now(),
    )
    writes.detections.append(detection)
    if strategy == "auto_adapt":
        detection.new_version = latest.version + 1
        writes.versions.append(_version_row(event, latest.version + 1, digest, stored_columns, event_id))
        state.latest = _Baseline(latest.version + 1, digest, stored_columns, columns)
    else:
        state.open[(latest.version, digest)] = detection
    if strategy == "fail" and not state.blocked:
        writes.blocks.append(
            {
                "project_id": event.project_id,
                "connector_id": event.connector_id,
                "table_name": event.table_name,
                "detection_id": detection.id,
                "blocked_at": utc_now(),
            }
        )
        state.blocked = True
    writes.audit.append(
        _audit_row(
            event,
            "detected",
            actor,
            detection_id=detection.id,
            strategy=strategy,
            before_hash=latest.schema_hash,
            after_hash=digest,
            drifts=detection.drifts,
            detail=f"policy decided {strategy}: {len(drifts)} drift(s), status {detection.status}",
        )
    )
    return Outcome(latest.version, detection, is_new=True, drifts=drifts)


def record_metrics(outcome: Outcome) -> None:
    """Count drifts and the detection once, after it has committed; a detection the policy adapts
    is resolved at once (0 s to resolution)."""
    if outcome.detection is None or not outcome.is_new:
        return
    metrics.DRIFT_DETECTIONS.labels(status=outcome.detection.status, decided_by="policy").inc()
    if outcome.detection.status == "adapted":
        metrics.DRIFT_RESOLUTION_SECONDS.labels(strategy="auto_adapt").observe(0.0)
    for drift in outcome.drifts:
        metrics.DRIFT_EVENTS.labels(
            drift_type=drift.drift_type, severity=drift.severity, strategy=outcome.detection.strategy
        ).inc()


def to_event(detection: Detection | NewDetection, accepted: Sequence[Drift] | None = None) -> DriftDetected:
    """The `drift.detected` event of a detection; its id is the detection's, so re-sends dedupe.

    A person's later acceptance is a new fact with its own id, carrying the accepted drifts."""
    event_id = uuid.UUID(detection.id)
    if accepted is None:
        return _event(detection, event_id, [Drift.model_validate(d) for d in detection.drifts])
    return _event(detection, uuid.uuid5(event_id, f"adapted:{detection.new_version}"), accepted)


def _event(
    detection: Detection | NewDetection, event_id: uuid.UUID, drifts: Sequence[Drift]
) -> DriftDetected:
    return DriftDetected(
        event_id=event_id,
        project_id=detection.project_id,
        connector_id=detection.connector_id,
        table_name=detection.table_name,
        observed_event_id=uuid.UUID(detection.observed_event_id),
        baseline_version=detection.baseline_version,
        new_version=detection.new_version,
        before_hash=detection.before_hash,
        after_hash=detection.after_hash,
        drifts=list(drifts),
        strategy=detection.strategy,
        status=detection.status,
    )


async def adapt(
    session: AsyncSession,
    project_id: str,
    detection_id: str,
    strategy: Strategy,
    drift_indexes: Sequence[int] | None,
    actor: str,
) -> tuple[Detection, DriftDetected | None]:
    """A person's decision on a detection: accept (all or some drifts), suggest, alert or block.

    Acceptance returns the `drift.detected` event that tells downstream (templates) to adapt."""
    detection = await store.detection(session, project_id, detection_id)
    if detection is None:
        raise NotFound(f"detection {detection_id!r} not found")
    if detection.status == "adapted":
        raise Conflict(f"detection {detection_id!r} was already adapted into version {detection.new_version}")
    drifts = [Drift.model_validate(d) for d in detection.drifts]
    if drift_indexes is not None:
        bad = [i for i in drift_indexes if not 0 <= i < len(drifts)]
        if bad:
            raise Invalid(f"drift_indexes: {bad} out of range 0..{len(drifts) - 1}", at="/body/drift_indexes")
        chosen = [drifts[i] for i in sorted(set(drift_indexes))]
    else:
        chosen = drifts
    before_hash, after_hash = detection.before_hash, None
    if strategy == "auto_adapt":
        latest = await store.latest_version(session, project_id, detection.connector_id, detection.table_name)
        assert latest is not None  # a detection always has a baseline
        columns = apply_drifts(latest.columns, detection.observed_columns, chosen)
        after_hash = schema_hash(columns_from_stored(columns))
        detection.new_version = latest.version + 1
        await store.insert_rows(
            session,
            SchemaVersion,
            [_version_row(detection, latest.version + 1, after_hash, columns, detection.observed_event_id)],
        )
        if await store.clear_block(session, project_id, detection.connector_id, detection.table_name):
            table = TableRef(project_id, detection.connector_id, detection.table_name)
            await _close_blocked(session, table, actor, keep=detection.id)
    elif strategy == "fail":
        await store.set_block(session, project_id, detection.connector_id, detection.table_name, detection.id)
    detection.strategy = strategy
    detection.status = STATUS_OF[strategy]
    detection.decided_by = actor
    await _audit(
        session,
        detection,
        "adapted" if strategy == "auto_adapt" else f"decided_{strategy}",
        actor,
        detection_id=detection.id,
        strategy=strategy,
        before_hash=before_hash,
        after_hash=after_hash,
        drifts=[d.model_dump(mode="json") for d in chosen],
        detail=f"{len(chosen)} of {len(drifts)} drift(s)",
    )
    await session.flush()
    return detection, to_event(detection, chosen) if strategy == "auto_adapt" else None


async def unblock(
    session: AsyncSession, project_id: str, connector_id: str, table_name: str, actor: str
) -> list[Detection]:
    """Let a blocked source flow again without accepting its change (the baseline stays).

    The table's blocked detections are closed (status `unblocked`): a change observed again is
    decided anew by the policy, not answered with the old `fail`. Returns them (for the metrics)."""
    if not await store.clear_block(session, project_id, connector_id, table_name):
        raise NotFound(f"{connector_id}/{table_name} is not blocked")
    closed = await _close_blocked(session, TableRef(project_id, connector_id, table_name), actor)
    await _audit(
        session,
        TableRef(project_id, connector_id, table_name),
        "unblocked",
        actor,
        detail=f"unblocked without accepting the change; {len(closed)} blocked detection(s) closed",
    )
    return closed


async def _close_blocked(
    session: AsyncSession, table: TableRef, actor: str, keep: str | None = None
) -> list[Detection]:
    """Close the table's blocked detections (but `keep`): their changes are decided anew."""
    closed = []
    for detection in await store.blocked_detections(
        session, table.project_id, table.connector_id, table.table_name
    ):
        if detection.id != keep:
            detection.status, detection.decided_by = "unblocked", actor
            closed.append(detection)
    return closed


def record_decision(detection: Detection, strategy: str) -> None:
    """A person's decision (or an unblock), once committed: its status and time to resolution."""
    metrics.DRIFT_DETECTIONS.labels(status=detection.status, decided_by="person").inc()
    created = detection.created_at
    if created.tzinfo is None:  # SQLite gives back naive UTC
        created = created.replace(tzinfo=UTC)
    waited = max(0.0, (utc_now() - created).total_seconds())
    metrics.DRIFT_RESOLUTION_SECONDS.labels(strategy=strategy).observe(waited)


async def set_policy(
    session: AsyncSession,
    project_id: str,
    connector_id: str,
    table_name: str,
    strategies: dict[Severity, Strategy],
    actor: str,
) -> dict[Severity, Strategy]:
    full = complete(strategies)
    await store.upsert_policy(session, project_id, connector_id, table_name, dict(full), actor)
    await _audit(
        session, TableRef(project_id, connector_id, table_name), "policy_set", actor, detail=str(full)
    )
    return full
