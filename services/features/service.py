"""The feature store as one object: registry-backed reads and writes over an online and an offline store.

The worker, the REST routes and services that embed the store in-process (`FeatureStore.get_online`)
all use this class. The online read path resolves a list of feature names once into an `OnlinePlan`
(views, fields, TTLs, slots; cached briefly) so a read is one round trip per view plus decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from aietl.services.features import registry
from aietl.services.features.domain import (
    PAYLOAD_START,
    PREFIX_WIDTH,
    FeatureError,
    FeatureSpec,
    OfflineRow,
    OnlineWrite,
    StorageType,
    UnknownFeature,
    check_value,
    encode_online,
    parse_ref,
    time_prefix,
    to_us,
)
from aietl.services.features.on_demand import Budget, compile_expression, registered_transform
from aietl.services.features.stores import HistoricalFeature, OfflineStore, OnlineStore, Window
from aietl.services.features.tables import FeatureVersion, FeatureView
from aietl.shared.db import Database
from aietl.shared.metrics import (
    FEATURE_NEWEST_VALUE,
    FEATURE_ONLINE_SECONDS,
    FEATURE_ONLINE_VALUES,
    FEATURE_VALUES_WRITTEN,
)

# On-demand work (entities x expression nodes) done between two turns of the event loop: ~1 ms.
ON_DEMAND_SLICE_WORK = 1_000
TRANSFORM_COST = 16  # a registered Python transform, counted as an expression of this many nodes
WRITE_INLINE_VALUES = 2_000  # larger writes are checked and encoded in a thread
PLAN_CACHE_SECONDS = 5.0
PLAN_CACHE_SIZE = 1_024
T = TypeVar("T")


def now_us() -> int:
    return time.time_ns() // 1_000


@dataclass(frozen=True, slots=True)
class ValueIn:
    feature_name: str
    entity_id: str
    value: Any
    timestamp: datetime


@dataclass(slots=True)
class ViewRead:
    """The fields of one view; their values fill the consecutive slots from `first_slot`."""

    view: str
    first_slot: int
    fields: list[str] = field(default_factory=list)
    ttls_us: list[int] = field(default_factory=list)

    def cutoffs(self, now: int) -> tuple[list[bytes], bytes]:
        """Per field, the oldest time prefix still fresh at `now`; and the strictest of them."""
        cutoffs = [time_prefix(now - ttl) for ttl in self.ttls_us]
        return cutoffs, max(cutoffs)


@dataclass(slots=True)
class OnDemandStep:
    """Fills `output_slots` from the values in `input_slots` (by input name) and the request data;
    `cost` is its work per entity (expression nodes) deciding whether a read computes off the loop."""

    output_slots: dict[str, int]
    input_slots: dict[str, int]
    compute: Callable[[Mapping[str, Any], Budget], Mapping[str, Any]]
    cost: int


@dataclass(slots=True)
class OnlinePlan:
    names: list[str]
    response_slots: list[int]
    reads: list[ViewRead] = field(default_factory=list)
    on_demand: list[OnDemandStep] = field(default_factory=list)
    slot_count: int = 0
    direct: bool = False  # one view, no on-demand, response names = its fields in order
    all_present: dict[str, str] = field(default_factory=dict)  # copied per fully present vector

    @property
    def stored_slot_count(self) -> int:
        """Slots read from the online store come first; on-demand outputs follow them."""
        return sum(len(read.fields) for read in self.reads)


@dataclass(frozen=True, slots=True)
class WriteResult:
    online: int
    offline: int


class _Cache:
    """A small time-bounded cache; registration in this process clears it at once."""

    def __init__(self) -> None:
        self._items: dict[Any, tuple[float, Any]] = {}

    async def get(self, key: Any, load: Callable[[], Awaitable[T]]) -> T:
        hit = self._items.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        value = await load()
        if len(self._items) >= PLAN_CACHE_SIZE:
            self._items.clear()
        self._items[key] = (time.monotonic() + PLAN_CACHE_SECONDS, value)
        return value

    def clear(self) -> None:
        self._items.clear()


class FeatureStore:
    def __init__(
        self, database: Database, online: OnlineStore, offline: OfflineStore, *, online_label: str
    ) -> None:
        self.database = database
        self.online = online
        self.offline = offline
        self.online_label = online_label
        self._plans = _Cache()
        self._specs = _Cache()
        self._newest_us: dict[tuple[str, str], int] = {}

    def registry_changed(self) -> None:
        """Forget cached definitions so this process reads the new ones at once (the `register_*`
        methods do it; call it after writing the registry another way)."""
        self._plans.clear()
        self._specs.clear()

    # --- registration: each commits, then clears this process's caches ---

    async def register_feature(
        self, project: str, definition: registry.FeatureDefinition
    ) -> tuple[FeatureVersion, bool]:
        """The feature's current version, and whether this call created it."""
        async with self.database.transaction() as session:
            registered = await registry.register_feature(session, project, definition)
        self.registry_changed()
        return registered

    async def register_view(
        self, project: str, definition: registry.ViewDefinition
    ) -> tuple[FeatureView, list[FeatureVersion]]:
        async with self.database.transaction() as session:
            versions = await registry.register_view(session, project, definition)
            view = await registry.view(session, project, definition.name)
        self.registry_changed()
        assert view is not None  # registered just now
        return view, versions

    async def register_on_demand(self, project: str, definition: registry.OnDemandDefinition) -> FeatureView:
        async with self.database.transaction() as session:
            view = await registry.register_on_demand(session, project, definition)
        self.registry_changed()
        return view

    async def specs(
        self, project: str, refs: Sequence[str], session: AsyncSession | None = None
    ) -> list[FeatureSpec]:
        """The features' definitions (cached briefly); read through `session` when one is open."""

        async def load() -> list[FeatureSpec]:
            if session is not None:
                return await registry.resolve(session, project, list(refs))
            async with self.database.sessions() as own:
                return await registry.resolve(own, project, list(refs))

        return await self._specs.get((project, tuple(refs)), load)

    # --- online reads ---

    async def get_online(
        self,
        project: str,
        feature_names: Sequence[str],
        entity_ids: Sequence[str],
        request_data: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """One vector per entity: `{"entity_id", "features": {name: value}, "statuses": {name: status}}`.

        Status is "present", "expired" (past its TTL: value null) or "missing" (never written)."""
        started = time.perf_counter()
        plan = await self._plans.get(
            (project, tuple(feature_names)), lambda: self._plan(project, feature_names)
        )
        now = now_us()
        if plan.direct:
            vectors = await self._read_direct(project, plan, entity_ids, now)
        else:
            vectors = await self._read_general(project, plan, entity_ids, now, request_data)
        FEATURE_ONLINE_SECONDS.labels(self.online_label).observe(time.perf_counter() - started)
        return vectors

    async def _read_direct(
        self, project: str, plan: OnlinePlan, entity_ids: Sequence[str], now: int
    ) -> list[dict[str, Any]]:
        """The common read (stored features of one view, in request order): vectors built straight
        from the store's rows, with one decode per entity when all its values are there and fresh."""
        read = plan.reads[0]
        rows = await self.online.read(project, read.view, entity_ids, read.fields)
        cutoffs, strictest = read.cutoffs(now)
        names, all_present = plan.names, plan.all_present
        vectors = []
        partial: list[str] = []
        for entity_id, raws in zip(entity_ids, rows, strict=True):
            if _complete(raws) and min(raws) >= strictest:
                features = dict(zip(names, _decode_fresh(raws), strict=True))
                statuses = all_present.copy()
            else:
                values, states = _decode(raws, cutoffs, strictest)
                features = dict(zip(names, values, strict=True))
                statuses = dict(zip(names, states, strict=True))
                partial.extend(states)
            vectors.append({"entity_id": entity_id, "features": features, "statuses": statuses})
        _count_online_values(len(entity_ids) * len(names), partial)
        return vectors

    async def _read_general(
        self,
        project: str,
        plan: OnlinePlan,
        entity_ids: Sequence[str],
        now: int,
        request_data: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Several views, repeated names or on-demand features: values land in per-entity slots.

        On-demand expressions are CPU work sized by users: the entities are assembled in slices of
        about `ON_DEMAND_SLICE_WORK` nodes, and the event loop serves other requests between two
        slices (a thread would hold the GIL against it for as long); all slices share one `Budget`."""
        reads = plan.reads
        results = await asyncio.gather(
            *(self.online.read(project, r.view, entity_ids, r.fields) for r in reads)
        )
        budget = Budget()
        per_entity = sum(step.cost for step in plan.on_demand) or 1
        size = max(1, ON_DEMAND_SLICE_WORK // per_entity)
        vectors: list[dict[str, Any]] = []
        for start in range(0, len(entity_ids), size):
            if start:
                await asyncio.sleep(0)
            part = slice(start, start + size)
            rows = [view_rows[part] for view_rows in results]
            vectors.extend(_assemble(plan, entity_ids[part], rows, now, request_data, budget))
        return vectors

    async def _plan(self, project: str, feature_names: Sequence[str]) -> OnlinePlan:
        if not feature_names:
            raise FeatureError("feature_names must list at least one feature")
        async with self.database.sessions() as session:
            on_demand = {
                output: view
                for view in await registry.on_demand_views(session, project)
                for output in view.outputs
            }
            stored_refs = [name for name in feature_names if parse_ref(name).name not in on_demand]
            wanted_views = list(
                dict.fromkeys(
                    on_demand[parse_ref(n).name] for n in feature_names if parse_ref(n).name in on_demand
                )
            )
            input_refs = [ref for view in wanted_views for ref in view.inputs]
            all_refs = list(dict.fromkeys([*stored_refs, *input_refs]))
            specs = await registry.resolve(session, project, all_refs) if all_refs else []
        by_ref = dict(zip(all_refs, specs, strict=True))
        offline_only = [ref for ref, spec in by_ref.items() if not spec.accepts("online")]
        if offline_only:
            raise FeatureError(
                f"features stored offline only cannot be read online: {', '.join(offline_only)}"
            )
        entities = {spec.entity for spec in specs}
        if len(entities) > 1:
            raise FeatureError(f"features of several entities in one read: {sorted(entities)}")
        plan = OnlinePlan(names=list(feature_names), response_slots=[])
        slot_of: dict[str, int] = {}
        by_view: dict[str, list[tuple[str, FeatureSpec]]] = {}
        for ref, spec in by_ref.items():
            by_view.setdefault(spec.view, []).append((ref, spec))
        for view_name, members in by_view.items():
            read = ViewRead(view_name, plan.slot_count)
            for ref, spec in members:
                slot_of[ref] = plan.slot_count
                read.fields.append(spec.field)
                read.ttls_us.append(spec.ttl_us)
                plan.slot_count += 1
            plan.reads.append(read)
        for view in wanted_views:
            outputs = {}
            for output in view.outputs:
                slot_of[output] = outputs[output] = plan.slot_count
                plan.slot_count += 1
            inputs = {parse_ref(ref).name: slot_of[ref] for ref in view.inputs}
            plan.on_demand.append(OnDemandStep(outputs, inputs, *_compute(view)))
        plan.response_slots = [
            slot_of[name if name in slot_of else parse_ref(name).name] for name in feature_names
        ]
        plan.direct = (
            len(plan.reads) == 1
            and not plan.on_demand
            and plan.response_slots == list(range(plan.slot_count))
            and plan.slot_count == len(plan.names)
        )
        plan.all_present = dict.fromkeys(plan.names, "present")
        return plan

    # --- writes ---

    async def write(
        self,
        project: str,
        values: Sequence[ValueIn],
        storage: StorageType,
        session: AsyncSession | None = None,
    ) -> WriteResult:
        """Write to the requested stores, each value only where its feature is stored; idempotent.

        With `session` (a worker's transaction) the registry is read and the SQL offline values are
        written through it: one connection and one transaction per event, as `process_once` wants."""
        if not values:
            raise FeatureError("features must list at least one value")
        refs = list(dict.fromkeys(value.feature_name for value in values))
        specs = dict(zip(refs, await self.specs(project, refs, session), strict=True))
        if len(values) > WRITE_INLINE_VALUES:  # checking and encoding a bulk write is CPU work
            online_rows, offline_rows, newest = await asyncio.to_thread(_rows, specs, values, storage)
        else:
            online_rows, offline_rows, newest = _rows(specs, values, storage)
        if offline_rows:
            await self.offline.write(project, offline_rows, now_us(), session)
            FEATURE_VALUES_WRITTEN.labels("offline").inc(len(offline_rows))
        if online_rows:
            await self.online.write(project, online_rows)
            FEATURE_VALUES_WRITTEN.labels("online").inc(len(online_rows))
        self._record_freshness(project, newest)
        return WriteResult(online=len(online_rows), offline=len(offline_rows))

    def _record_freshness(self, project: str, newest_us: Mapping[str, int]) -> None:
        """Keep each view's newest event time; a late, older value does not make it look staler."""
        for view, event_us in newest_us.items():
            key = (project, view)
            if event_us > self._newest_us.get(key, 0):
                self._newest_us[key] = event_us
                FEATURE_NEWEST_VALUE.labels(project, view).set(event_us / 1_000_000)

    # --- materialisation ---

    async def _view_specs(self, project: str, view_name: str) -> list[FeatureSpec]:
        async with self.database.sessions() as session:
            view = await registry.view(session, project, view_name)
            if view is None or view.kind != "batch":
                raise UnknownFeature(f"unknown feature view {view_name!r}")
            rows = await registry.view_features(session, project, view_name)
        return [spec for spec in map(registry.spec_of, rows) if spec.storage_type == "both"]

    async def _copy_to_online(self, project: str, view: str, specs: list[FeatureSpec], window: Window) -> int:
        """Latest offline values in `window` into the online store; values already past TTL are skipped."""
        if not specs:
            return 0
        ttl_by_field = {spec.field: spec.ttl_us for spec in specs}
        parts = await self.offline.online_copy_parts(project, list(ttl_by_field), window)
        count, writing = 0, None
        try:
            for part in range(parts):
                # the offline store groups part k+1 while part k goes into the online store
                entities = await self.offline.latest_for_online(
                    project, ttl_by_field, window, now_us(), (part, parts)
                )
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self.online.write_entities(project, view, entities))
                count += sum(entity.value_count for entity in entities)
            if writing is not None:
                await writing
        except BaseException:
            if writing is not None:
                writing.cancel()
            raise
        FEATURE_VALUES_WRITTEN.labels("online").inc(count)
        return count

    async def materialize(self, project: str, view_name: str, start: datetime, end: datetime) -> int:
        """Latest offline value per entity with event time in [start, end) into the online store."""
        if end <= start:
            raise FeatureError("end must be after start")
        specs = await self._view_specs(project, view_name)
        return await self._copy_to_online(
            project, view_name, specs, Window("event", to_us(start), to_us(end))
        )

    async def materialize_incremental(self, project: str, view_name: str) -> tuple[int, int, int]:
        """Values written offline since the last run (late data included); returns (count, from, to)."""
        specs = await self._view_specs(project, view_name)
        async with self.database.transaction() as session:
            mark = await registry.watermark(session, project, view_name)
            low, high = mark.watermark, now_us()
            count = await self._copy_to_online(project, view_name, specs, Window("written", low, high))
            mark.watermark = high
        return count, low, high

    # --- historical ---

    async def historical(
        self, project: str, feature_names: Sequence[str], entity_rows: Sequence[tuple[str, datetime]]
    ) -> list[list[Any]]:
        """Per entity row (in order), per feature: the point-in-time correct value or None."""
        if not feature_names:
            raise FeatureError("feature_names must list at least one feature")
        if not entity_rows:
            raise FeatureError("entity_rows must list at least one row")
        specs = await self.specs(project, list(feature_names))
        not_offline = [spec.field for spec in specs if not spec.accepts("offline")]
        if not_offline:
            raise FeatureError(f"features stored online only have no history: {', '.join(not_offline)}")
        columns = await self.offline.historical(
            project,
            [(entity_id, to_us(at)) for entity_id, at in entity_rows],
            [HistoricalFeature(spec.field, spec.ttl_us) for spec in specs],
        )
        loads = orjson.loads
        decoded = [[None if raw is None else loads(raw) for raw in column] for column in columns]
        return [list(row) for row in zip(*decoded, strict=True)]


_PRESENT = FEATURE_ONLINE_VALUES.labels("present")
_EXPIRED = FEATURE_ONLINE_VALUES.labels("expired")
_MISSING = FEATURE_ONLINE_VALUES.labels("missing")


def _count_online_values(asked: int, not_present: Sequence[str]) -> None:
    """The online store's hit rate: of `asked` stored values, those in `not_present` were not served."""
    expired = not_present.count("expired")
    missing = len(not_present) - expired
    _PRESENT.inc(asked - expired - missing)
    if expired:
        _EXPIRED.inc(expired)
    if missing:
        _MISSING.inc(missing)


def _rows(
    specs: Mapping[str, FeatureSpec], values: Sequence[ValueIn], storage: StorageType
) -> tuple[list[OnlineWrite], list[OfflineRow], dict[str, int]]:
    """The online and offline rows of `values`, each checked against its feature's type and storage,
    and the newest event time per feature view."""
    online_rows: list[OnlineWrite] = []
    offline_rows: list[OfflineRow] = []
    newest: dict[str, int] = {}
    for value in values:
        spec = specs[value.feature_name]
        checked = check_value(spec, value.value)
        event_us = to_us(value.timestamp)
        if event_us > newest.get(spec.view, 0):
            newest[spec.view] = event_us
        to_online = storage != "offline" and spec.accepts("online")
        to_offline = storage != "online" and spec.accepts("offline")
        if not (to_online or to_offline):
            raise FeatureError(f"feature {spec.field!r} is stored {spec.storage_type} only, not {storage}")
        if to_online:
            online_rows.append(
                OnlineWrite(
                    spec.view,
                    value.entity_id,
                    spec.field,
                    event_us,
                    encode_online(event_us, checked),
                    event_us + spec.ttl_us,
                )
            )
        if to_offline:
            offline_rows.append(
                OfflineRow(spec.field, value.entity_id, event_us, orjson.dumps(checked).decode())
            )
    return online_rows, offline_rows, newest


def _decode_fresh(raws: list[bytes]) -> list[Any]:
    """Values of fields all present and fresh, in one decode: joined, they are `[t0, v0, t1, v1, ...]`."""
    values: list[Any] = orjson.loads(b"[" + b",".join(raws) + b"]")[1::2]
    return values


def _complete(raws: list[bytes | None]) -> TypeGuard[list[bytes]]:
    """True when every field has a stored value (and says so to the type checker)."""
    return None not in raws


def _decode(
    raws: list[bytes | None], cutoffs: Sequence[bytes], strictest: bytes
) -> tuple[list[Any], list[str]]:
    """Values and statuses of one entity's fields (`strictest`: the latest of the cutoffs)."""
    if _complete(raws) and min(raws) >= strictest:
        return _decode_fresh(raws), ["present"] * len(raws)
    values: list[Any] = []
    statuses: list[str] = []
    for raw, cutoff in zip(raws, cutoffs, strict=True):
        if raw is None:
            values.append(None)
            statuses.append("missing")
        elif raw[:PREFIX_WIDTH] < cutoff:
            values.append(None)
            statuses.append("expired")
        else:
            values.append(orjson.loads(raw[PAYLOAD_START:]))
            statuses.append("present")
    return values, statuses


def _assemble(
    plan: OnlinePlan,
    entity_ids: Sequence[str],
    results: Sequence[list[list[bytes | None]]],
    now: int,
    request_data: Mapping[str, Any] | None,
    budget: Budget,
) -> list[dict[str, Any]]:
    """The vectors of a general read from the online rows of each of its views (in `plan.reads` order)."""
    count = len(entity_ids)
    values: list[list[Any]] = [[None] * plan.slot_count for _ in range(count)]
    statuses: list[list[str]] = [["missing"] * plan.slot_count for _ in range(count)]
    for read, rows in zip(plan.reads, results, strict=True):
        cutoffs, strictest = read.cutoffs(now)
        first, last = read.first_slot, read.first_slot + len(read.fields)
        for entity_values, entity_statuses, raws in zip(values, statuses, rows, strict=True):
            entity_values[first:last], entity_statuses[first:last] = _decode(raws, cutoffs, strictest)
    stored = [status for entity in statuses for status in entity[: plan.stored_slot_count]]
    _count_online_values(len(stored), [status for status in stored if status != "present"])
    if plan.on_demand:
        _compute_on_demand(plan, values, statuses, request_data, budget)
    names, slots = plan.names, plan.response_slots
    return [
        {
            "entity_id": entity_id,
            "features": {name: ev[slot] for name, slot in zip(names, slots, strict=True)},
            "statuses": {name: es[slot] for name, slot in zip(names, slots, strict=True)},
        }
        for entity_id, ev, es in zip(entity_ids, values, statuses, strict=True)
    ]


def _compute_on_demand(
    plan: OnlinePlan,
    values: list[list[Any]],
    statuses: list[list[str]],
    request_data: Mapping[str, Any] | None,
    budget: Budget,
) -> None:
    """Fill the on-demand slots of every entity; the read's evaluations share one time budget."""
    for step in plan.on_demand:
        for entity_values, entity_statuses in zip(values, statuses, strict=True):
            scope = dict(request_data or {})
            scope.update({name: entity_values[slot] for name, slot in step.input_slots.items()})
            outputs = step.compute(scope, budget)
            for name, slot in step.output_slots.items():
                entity_values[slot] = outputs.get(name)
                entity_statuses[slot] = "missing" if entity_values[slot] is None else "present"


def _compute(
    view: FeatureView,
) -> tuple[Callable[[Mapping[str, Any], Budget], Mapping[str, Any]], int]:
    """The view's computation and its cost per entity."""
    if view.transform:
        transform = registered_transform(view.transform)  # code of the platform's own: trusted
        return (lambda scope, _budget: transform(scope)), TRANSFORM_COST
    expressions = {name: compile_expression(spec["expression"]) for name, spec in view.outputs.items()}

    def evaluate(scope: Mapping[str, Any], budget: Budget) -> Mapping[str, Any]:
        return {name: expression.evaluate(scope, budget) for name, expression in expressions.items()}

    return evaluate, sum(expression.nodes for expression in expressions.values())
