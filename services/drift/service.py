"""The drift use cases, shared by the worker and the REST routes: observe, adapt, unblock, set policy.

Each function works inside the caller's transaction, so the worker's exactly-once marker and the
effects it records commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.drift import store
from services.drift.domain import (
    STATUS_OF,
    columns_from_stored,
    columns_of,
    complete,
    decide,
    detect,
    policy_scopes,
    schema_hash,
)
from services.drift.domain.adapt import apply_drifts
from services.drift.tables import AuditRecord, Block, Detection, SchemaVersion
from shared import metrics
from shared.events import DriftDetected, SchemaObserved
from shared.events.base import utc_now
from shared.events.schema import Drift, Severity, Strategy


class NotFoundError(LookupError):
    """The thing asked for does not exist in this project."""


class ConflictError(RuntimeError):
    """The request does not fit the current state (e.g. adapting an already decided detection)."""


@dataclass(frozen=True, slots=True)
class TableRef:
    project_id: str
    connector_id: str
    table_name: str


@dataclass
class Outcome:
    """What one observation led to. `detection` is None when there was nothing to decide."""

    baseline_version: int
    detection: Detection | None = None
    is_new: bool = False
    created_baseline: bool = False
    drifts: list[Drift] = field(default_factory=list)


def _audit(session: AsyncSession, subject: Any, action: str, actor: str, **values: Any) -> None:
    session.add(
        AuditRecord(
            project_id=subject.project_id,
            connector_id=subject.connector_id,
            table_name=subject.table_name,
            action=action,
            actor=actor,
            drifts=values.pop("drifts", []),
            detail=values.pop("detail", ""),
            **values,
        )
    )


def _add_version(
    session: AsyncSession,
    subject: Any,
    version: int,
    digest: str,
    columns: list[dict[str, Any]],
    event_id: str,
) -> SchemaVersion:
    row = SchemaVersion(
        project_id=subject.project_id,
        connector_id=subject.connector_id,
        table_name=subject.table_name,
        version=version,
        schema_hash=digest,
        columns=columns,
        observed_event_id=event_id,
        created_at=utc_now(),
    )
    session.add(row)
    return row


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


@dataclass
class _TableState:
    """What deciding about one table needs, loaded once per batch and kept current while it runs."""

    latest: SchemaVersion | None
    policy: dict[Severity, Strategy]
    blocked: bool
    open: dict[tuple[int, str], Detection] = field(default_factory=dict)  # (baseline, after hash)


async def _load_states(
    session: AsyncSession, events: Sequence[SchemaObserved]
) -> dict[store.TableKey, _TableState]:
    keys = {(e.project_id, e.connector_id, e.table_name) for e in events}
    latest = await store.latest_versions(session, keys)
    blocked = await store.blocked(session, keys)
    policies = await store.policies_of(session, {project for project, _, _ in keys})
    states = {}
    for key in keys:
        states[key] = _TableState(latest.get(key), _policy_for(policies, key), key in blocked)
    for detection in await store.open_detections(session, keys):
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

    A handful of queries load the state of every table involved, whatever the number of events; the
    writes are added to the session for the caller's transaction. Raises `InvalidSchemaError`
    (naming the field) for a schema that cannot be understood."""
    states = await _load_states(session, events)
    outcomes = []
    for event in events:
        state = states[(event.project_id, event.connector_id, event.table_name)]
        outcomes.append(_observe(session, event, event.observed_by or default_actor, state))
    await session.flush()
    return outcomes


def _observe(session: AsyncSession, event: SchemaObserved, actor: str, state: _TableState) -> Outcome:
    columns = columns_of(event.columns, event.dialect)
    digest = schema_hash(columns)
    stored_columns = [column.stored() for column in columns]
    latest = state.latest
    if latest is None:
        state.latest = _add_version(session, event, 1, digest, stored_columns, str(event.event_id))
        _audit(session, event, "baseline_created", actor, after_hash=digest, detail="first observation")
        return Outcome(baseline_version=1, created_baseline=True)
    if latest.schema_hash == digest:
        return Outcome(baseline_version=latest.version)
    existing = state.open.get((latest.version, digest))
    if existing is not None:
        return Outcome(latest.version, existing, drifts=[Drift.model_validate(d) for d in existing.drifts])
    drifts = detect(columns_from_stored(latest.columns), columns, event.dialect)
    strategy = "fail" if state.blocked else decide(drifts, state.policy)  # blocked stays blocked
    detection = Detection(
        id=str(uuid.uuid4()),
        project_id=event.project_id,
        connector_id=event.connector_id,
        table_name=event.table_name,
        observed_event_id=str(event.event_id),
        dialect=event.dialect,
        baseline_version=latest.version,
        before_hash=latest.schema_hash,
        after_hash=digest,
        observed_columns=stored_columns,
        drifts=[d.model_dump(mode="json") for d in drifts],
        strategy=strategy,
        status=STATUS_OF[strategy],
        decided_by="policy",
        created_at=utc_now(),
    )
    session.add(detection)
    if strategy == "auto_adapt":
        detection.new_version = latest.version + 1
        state.latest = _add_version(
            session, event, latest.version + 1, digest, stored_columns, str(event.event_id)
        )
    else:
        state.open[(latest.version, digest)] = detection
    if strategy == "fail" and not state.blocked:
        session.add(
            Block(
                project_id=event.project_id,
                connector_id=event.connector_id,
                table_name=event.table_name,
                detection_id=detection.id,
            )
        )
        state.blocked = True
    _audit(
        session,
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
    return Outcome(latest.version, detection, is_new=True, drifts=drifts)


def record_metrics(outcome: Outcome) -> None:
    """Count drifts once, after their detection has committed."""
    if outcome.detection is None or not outcome.is_new:
        return
    for drift in outcome.drifts:
        metrics.DRIFT_EVENTS.labels(
            drift_type=drift.drift_type, severity=drift.severity, strategy=outcome.detection.strategy
        ).inc()


def to_event(detection: Detection, accepted: Sequence[Drift] | None = None) -> DriftDetected:
    """The `drift.detected` event of a detection; its id is the detection's, so re-sends dedupe.

    A person's later acceptance is a new fact with its own id, carrying the accepted drifts."""
    event_id = uuid.UUID(detection.id)
    if accepted is not None:
        event_id = uuid.uuid5(event_id, f"adapted:{detection.new_version}")
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
        drifts=list(accepted)
        if accepted is not None
        else [Drift.model_validate(d) for d in detection.drifts],
        strategy=detection.strategy,  # type: ignore[arg-type]
        status=detection.status,  # type: ignore[arg-type]
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
        raise NotFoundError(f"detection {detection_id!r} not found")
    if detection.status == "adapted":
        raise ConflictError(
            f"detection {detection_id!r} was already adapted into version {detection.new_version}"
        )
    drifts = [Drift.model_validate(d) for d in detection.drifts]
    if drift_indexes is not None:
        bad = [i for i in drift_indexes if not 0 <= i < len(drifts)]
        if bad:
            raise ValueError(f"drift_indexes: {bad} out of range 0..{len(drifts) - 1}")
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
        _add_version(session, detection, latest.version + 1, after_hash, columns, detection.observed_event_id)
        await store.clear_block(session, project_id, detection.connector_id, detection.table_name)
    elif strategy == "fail":
        await store.set_block(session, project_id, detection.connector_id, detection.table_name, detection.id)
    detection.strategy = strategy
    detection.status = STATUS_OF[strategy]
    detection.decided_by = actor
    _audit(
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
) -> None:
    """Let a blocked source flow again without accepting its change (the baseline stays)."""
    if not await store.clear_block(session, project_id, connector_id, table_name):
        raise NotFoundError(f"{connector_id}/{table_name} is not blocked")
    _audit(
        session,
        TableRef(project_id, connector_id, table_name),
        "unblocked",
        actor,
        detail="unblocked without accepting the change",
    )


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
    _audit(session, TableRef(project_id, connector_id, table_name), "policy_set", actor, detail=str(full))
    return full
