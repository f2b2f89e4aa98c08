"""Realistic pipeline run histories with known truth, for tests and the evaluation command.

Each simulated pipeline runs on a schedule (mostly hourly, some every two hours) with daily and
weekly load seasonality, and behaves as one of these kinds (the mix itself varies with the seed,
so that no figure is tuned to one population):

- `healthy`: nothing but very rare sporadic failures;
- `memory_leak`: memory creeps towards the limit over one to six days, the run is killed (OOM)
  until a restart; again and again;
- `degrading`: duration drift or error creep building up to failures, then a repair;
- `growing_volume`: data volume grows by a few percent a day; memory and duration follow until
  the limit or the timeout is crossed, then the limit is raised and growth continues;
- `error_storm`: upstream trouble: errors ramp up over a few hours, runs fail at the peak, then
  it clears;
- `flaky`: failures at a steady rate, clustered (one failure makes the next likelier);
- `recovering`: flaky, then fixed for good on some day.

Any non-healthy pipeline may also break suddenly with no warning sign (unpredictable by design).
Costs are billed by data processed; cost anomalies are seeded on top: spikes and drops lasting
one to three days, and level shifts (lasting from their first day on). The truth (failure cause
of each failed run, anomalous cost days) is returned beside the runs so that every figure can be
scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
KINDS = ("healthy", "memory_leak", "degrading", "growing_volume", "error_storm", "flaky", "recovering")
SPORADIC_FAILURE_RATE = 0.0005
MECHANISMS = {"leak": "memory_leak", "drift": "duration_drift", "errors": "error_creep"}


@dataclass(frozen=True)
class CostEvent:
    """A seeded cost anomaly: `spike`/`drop` for `days` days, or a lasting `level_shift`."""

    kind: str
    first_day: date
    days: int
    factor: float

    @property
    def anomalous_days(self) -> list[date]:
        """Days that should be flagged: every day of a spike or drop, the first day of a shift."""
        if self.kind == "level_shift":
            return [self.first_day]
        return [self.first_day + timedelta(days=k) for k in range(self.days)]


@dataclass(frozen=True)
class Degradation:
    """Stress building up over `ramp_hours` from `start_hour`, then `repair_hours` of failures."""

    start_hour: int
    ramp_hours: int
    repair_hours: int
    mechanism: str  # "memory_leak" | "duration_drift" | "error_creep"


@dataclass
class SimulatedPipeline:
    pipeline_id: str
    kind: str
    interval_hours: int = 1
    degradations: list[Degradation] = field(default_factory=list)
    cost_events: list[CostEvent] = field(default_factory=list)


@dataclass
class Simulation:
    runs: pd.DataFrame
    pipelines: list[SimulatedPipeline]
    causes: np.ndarray  # per run (aligned with `runs`): what made it fail, "" when it succeeded

    @property
    def cost_anomalies(self) -> set[tuple[str, date]]:
        return {
            (p.pipeline_id, day)
            for p in self.pipelines
            for event in p.cost_events
            for day in event.anomalous_days
        }

    def cost_anomaly_kinds(self) -> dict[tuple[str, date], str]:
        return {
            (p.pipeline_id, day): event.kind
            for p in self.pipelines
            for event in p.cost_events
            for day in event.anomalous_days
        }


def mix_of(seed: int, healthy_share: float | None = None) -> dict[str, float]:
    """Share of each pipeline kind for a seed: every kind present, proportions drawn at random."""
    rng = np.random.default_rng([seed, 1])
    weights = rng.dirichlet(np.full(len(KINDS), 2.0))
    shares = dict(zip(KINDS, weights, strict=True))
    if healthy_share is not None:
        others = 1.0 - shares["healthy"]
        for kind in KINDS[1:]:
            shares[kind] = shares[kind] / others * (1.0 - healthy_share) if others else 0.0
        shares["healthy"] = healthy_share
    return shares


def simulate(
    *,
    project_id: str = "sim",
    pipelines: int = 12,
    days: int = 28,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    healthy_share: float | None = None,
    mix: dict[str, float] | None = None,
) -> Simulation:
    """`pipelines` pipelines over `days` days; kinds drawn from `mix` (default: `mix_of(seed)`)."""
    rng = np.random.default_rng(seed)
    shares = mix or mix_of(seed, healthy_share)
    kinds, weights = list(shares), np.array(list(shares.values()), dtype=float)
    frames, truths, causes = [], [], []
    for index in range(pipelines):
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        frame, truth, cause = _simulate_pipeline(rng, project_id, f"pipeline-{index:03d}", kind, days, start)
        frames.append(frame)
        truths.append(truth)
        causes.append(cause)
    return Simulation(
        runs=pd.concat(frames, ignore_index=True), pipelines=truths, causes=np.concatenate(causes)
    )


@dataclass
class _Trouble:
    """Per run: stress of each mechanism (0..1), failures and what caused them."""

    leak: np.ndarray
    drift: np.ndarray
    errors: np.ndarray
    failed: np.ndarray
    cause: np.ndarray
    degradations: list[Degradation] = field(default_factory=list)

    @classmethod
    def none(cls, n: int) -> _Trouble:
        return cls(
            np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool), np.full(n, "", dtype=object)
        )

    def fail(self, mask: np.ndarray, cause: str) -> None:
        new = mask & ~self.failed
        self.failed |= mask
        self.cause[new] = cause


def _episodes(
    rng: np.random.Generator, n: int, per_run_hours: float, gap_hours: tuple[int, int]
) -> list[int]:
    """Start runs of successive episodes, separated by random gaps (in hours)."""
    starts, hour = [], float(rng.integers(24, 24 * 4))
    while hour / per_run_hours < n:
        starts.append(int(hour / per_run_hours))
        hour += float(rng.integers(*gap_hours))
    return starts


def _ramp_to_failure(
    rng: np.random.Generator, trouble: _Trouble, n: int, every: float, mechanism: str, cause: str
) -> None:
    """Stress ramps up over 1.5-6 days, then a few hours of failures until repaired; repeated."""
    stress = getattr(trouble, mechanism)
    for start in _episodes(rng, n, every, (24 * 3, 24 * 10)):
        ramp = max(2, int(rng.integers(36, 24 * 6) / every))
        end = min(n, start + ramp)
        stress[start:end] = (np.arange(end - start) / ramp) ** 1.5
        repair_runs = max(1, int(rng.integers(2, 10) / every))
        repair = slice(end, min(n, end + repair_runs))
        trouble.degradations.append(
            Degradation(
                int(start * every), int(ramp * every), int(repair_runs * every), MECHANISMS[mechanism]
            )
        )
        stress[repair] = 1.0
        trouble.fail(np.isin(np.arange(n), np.arange(n)[repair]), cause)
        # Near the end of the ramp the pipeline already fails now and then.
        early = np.zeros(n, dtype=bool)
        early[start:end] = rng.random(end - start) < 0.35 * stress[start:end] ** 4
        trouble.fail(early, cause)


def _plan_failures(
    rng: np.random.Generator, kind: str, n: int, every: float, load: np.ndarray
) -> tuple[_Trouble, np.ndarray]:
    """Stress and failures for a kind; returns the trouble and the (possibly growing) load."""
    trouble = _Trouble.none(n)
    trouble.fail(rng.random(n) < SPORADIC_FAILURE_RATE, "sporadic")
    if kind == "memory_leak":
        _ramp_to_failure(rng, trouble, n, every, "leak", "degradation")
    elif kind == "degrading":
        _ramp_to_failure(rng, trouble, n, every, str(rng.choice(["drift", "errors"])), "degradation")
    elif kind == "growing_volume":
        daily_growth = rng.uniform(0.04, 0.12)
        load = load * np.exp(daily_growth * np.arange(n) * every / 24)
    elif kind == "error_storm":
        for start in _episodes(rng, n, every, (24 * 2, 24 * 8)):
            build = max(1, int(rng.integers(4, 24) / every))
            peak = max(1, int(rng.integers(2, 8) / every))
            end = min(n, start + build + peak)
            build_end = min(n, start + build)
            trouble.errors[start:build_end] = np.linspace(0.2, 1.0, build)[: build_end - start]
            trouble.errors[start + build : end] = 1.0
            storm = np.zeros(n, dtype=bool)
            storm[start + build : end] = rng.random(max(0, end - start - build)) < 0.8
            trouble.fail(storm, "storm")
    elif kind in ("flaky", "recovering"):
        rate = rng.uniform(0.02, 0.12)
        fixed_at = int(n * rng.uniform(0.3, 0.7)) if kind == "recovering" else n
        flaky = np.zeros(n, dtype=bool)
        for i in range(fixed_at):
            flaky[i] = rng.random() < (0.45 if i and flaky[i - 1] else rate)
        trouble.fail(flaky, "flaky")
    if kind != "healthy":
        for start in _episodes(rng, n, every, (24 * 6, 24 * 20)):
            if rng.random() < 0.5:
                trouble.fail(
                    np.isin(np.arange(n), np.arange(start, start + int(rng.integers(1, 6)))), "sudden_break"
                )
    return trouble, load


def _simulate_pipeline(
    rng: np.random.Generator, project_id: str, pipeline_id: str, kind: str, days: int, start: datetime
) -> tuple[pd.DataFrame, SimulatedPipeline, np.ndarray]:
    every = int(rng.choice([1, 1, 1, 2]))
    n = days * 24 // every
    t_hours = np.arange(n) * every
    starts = pd.date_range(start, periods=n, freq=f"{every}h") + pd.to_timedelta(
        rng.integers(0, 600, n), unit="s"
    )
    hour_of_day = (t_hours % 24).astype(float)
    day_index = t_hours // 24
    weekday = (day_index + start.weekday()) % 7

    peak_hour = rng.uniform(8, 16)
    daily = 1 + rng.uniform(0.25, 0.6) * np.cos(2 * np.pi * (hour_of_day - peak_hour) / 24)
    weekend = np.where(weekday >= 5, rng.uniform(0.45, 0.85), 1.0)
    growth = 1 + rng.uniform(-0.002, 0.006) * t_hours / 24
    busy_day = rng.lognormal(0, 0.08, days)[day_index]  # some days simply carry more data
    load = daily * weekend * growth * busy_day * rng.lognormal(0, 0.08, n)
    base_rows = rng.lognormal(11, 0.8)
    trouble, load = _plan_failures(rng, kind, n, every, load)
    rows = np.maximum(1, base_rows * load).astype(np.int64)

    seconds_per_row = rng.lognormal(-7.5, 0.5)
    duration = (
        (rng.uniform(20, 120) + rows * seconds_per_row) * (1 + 2.5 * trouble.drift) * rng.lognormal(0, 0.1, n)
    )
    cpu = np.clip(
        rng.uniform(10, 25)
        + rng.uniform(25, 50) * np.minimum(load / np.percentile(load, 95), 2) * 0.7
        + rng.normal(0, 3, n),
        1,
        100,
    )
    base_memory = rng.uniform(300, 2_000)
    first_week = load[: max(1, 24 * 7 // every)]
    memory = base_memory * (0.4 + 0.6 * load / np.percentile(first_week, 95)) * rng.lognormal(0, 0.04, n)
    limit = np.full(n, float(np.percentile(memory[: len(first_week)], 99) * rng.uniform(1.35, 1.9)))
    if kind == "growing_volume":  # out of memory once volume outgrows the limit; then the limit is raised
        over = memory > limit
        while over.any():
            first = int(np.argmax(over))
            fixed = min(n, first + max(1, int(rng.integers(2, 10) / every)))
            trouble.fail(np.isin(np.arange(n), np.arange(first, fixed)), "degradation")
            limit[fixed:] = limit[first] * rng.uniform(1.4, 2.0)
            over = np.zeros(n, dtype=bool)
            over[fixed:] = memory[fixed:] > limit[fixed:]
    memory = memory + trouble.leak * (limit * 1.05 - memory)
    disk = rng.uniform(5_000, 50_000) * (1 + rng.uniform(0, 0.004) * t_hours / 24) + rng.normal(0, 50, n)
    network = rows * rng.uniform(0.0005, 0.003) * rng.lognormal(0, 0.05, n)
    error_rate = rng.uniform(1e-6, 2e-5) * (1 + 200 * trouble.errors**2)
    errors = rng.poisson(rows * error_rate)
    failed = trouble.failed
    errors = np.where(failed, errors + rng.integers(10, 500, n), errors)
    duration = np.where(failed, duration * rng.uniform(0.1, 1.0, n), duration)

    plan = SimulatedPipeline(pipeline_id, kind, every, degradations=trouble.degradations)
    cost_rate = _cost_events(rng, plan, days, start, day_index)
    # Billed by data processed (warehouse pricing): slow runs cost time, not money.
    cost = rows * rng.uniform(2e-7, 2e-6) * cost_rate * rng.lognormal(0, 0.05, n)

    ends = starts + pd.to_timedelta(duration, unit="s")
    frame = pd.DataFrame(
        {
            "project_id": project_id,
            "pipeline_id": pipeline_id,
            "run_id": [f"{pipeline_id}-{i}" for i in range(n)],
            "status": np.where(failed, "failed", "success"),
            "started_at": starts,
            "ended_at": ends,
            "duration_seconds": duration,
            "rows_read": rows,
            "rows_written": np.where(failed, 0, rows - errors.clip(0, rows)),
            "error_count": errors,
            "cpu_percent": cpu,
            "memory_mb": memory,
            "memory_limit_mb": limit,
            "disk_mb": disk,
            "disk_limit_mb": float(disk.max() * 1.5),
            "network_mb": network,
            "cost_usd": cost,
        }
    )
    return frame, plan, trouble.cause


def _cost_events(
    rng: np.random.Generator, plan: SimulatedPipeline, days: int, start: datetime, day_index: np.ndarray
) -> np.ndarray:
    """Cost multiplier per run from seeded spikes, drops and level shifts (recorded in `plan`)."""
    rate = np.ones(len(day_index))
    taken: set[int] = set()
    if days >= 10 and rng.random() < 0.5:
        shift = int(rng.integers(5, days - 4))
        factor = float(rng.choice([0.4, 0.6, 1.6, 2.0, 2.5]))
        plan.cost_events.append(CostEvent("level_shift", (start + timedelta(days=shift)).date(), 1, factor))
        rate = np.where(day_index >= shift, factor, 1.0)
        taken |= {shift - 2, shift - 1, shift, shift + 1, shift + 2}
    for _ in range(int(rng.integers(0, 4)) if days >= 7 else 0):
        kind = "spike" if rng.random() < 0.6 else "drop"
        length = int(rng.choice([1, 1, 2, 3]))
        first = int(rng.integers(1, days - length))
        span = set(range(first - 2, first + length + 2))
        if span & taken:
            continue
        taken |= span
        factor = float(rng.uniform(2.0, 4.0) if kind == "spike" else rng.uniform(0.05, 0.45))
        plan.cost_events.append(CostEvent(kind, (start + timedelta(days=first)).date(), length, factor))
        rate = np.where((day_index >= first) & (day_index < first + length), rate * factor, rate)
    return rate
