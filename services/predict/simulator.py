"""Realistic pipeline run histories with known truth, for tests and the evaluation command.

Each simulated pipeline runs hourly with daily and weekly load seasonality. Scenarios layered on
top: slow degradations (memory leak, duration drift or error creep) that end in failures when a
limit is crossed, sudden breaks with no warning, rare sporadic failures, cost spikes (single days)
and cost level shifts (a lasting change, not an anomaly). The truth (failure times, anomalous cost
days) is returned beside the runs so that every figure can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


@dataclass(frozen=True)
class Degradation:
    """Stress building up over `ramp_hours` from `start_hour`, then `repair_hours` of failures."""

    start_hour: int
    ramp_hours: int
    repair_hours: int
    mechanism: str  # "memory_leak" | "duration_drift" | "error_creep"


@dataclass(frozen=True)
class SuddenBreak:
    start_hour: int
    hours: int


@dataclass
class SimulatedPipeline:
    pipeline_id: str
    degradations: list[Degradation] = field(default_factory=list)
    breaks: list[SuddenBreak] = field(default_factory=list)
    cost_spike_days: list[date] = field(default_factory=list)
    cost_shift_day: date | None = None


@dataclass
class Simulation:
    runs: pd.DataFrame
    pipelines: list[SimulatedPipeline]

    @property
    def cost_anomalies(self) -> set[tuple[str, date]]:
        return {(p.pipeline_id, day) for p in self.pipelines for day in p.cost_spike_days}


def simulate(
    *,
    project_id: str = "sim",
    pipelines: int = 12,
    days: int = 28,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    healthy_share: float = 0.25,
) -> Simulation:
    """`pipelines` hourly pipelines over `days` days; about `healthy_share` of them stay healthy."""
    rng = np.random.default_rng(seed)
    frames, truths = [], []
    for index in range(pipelines):
        healthy = rng.random() < healthy_share
        frame, truth = _simulate_pipeline(rng, project_id, f"pipeline-{index:03d}", days, start, healthy)
        frames.append(frame)
        truths.append(truth)
    return Simulation(runs=pd.concat(frames, ignore_index=True), pipelines=truths)


def _plan(rng: np.random.Generator, pipeline_id: str, hours: int, healthy: bool) -> SimulatedPipeline:
    plan = SimulatedPipeline(pipeline_id)
    if healthy:
        return plan
    hour = int(rng.integers(24, 24 * 5))
    while hour < hours:
        if rng.random() < 0.8:
            ramp = int(rng.integers(36, 24 * 6))
            mechanism = str(rng.choice(["memory_leak", "duration_drift", "error_creep"]))
            plan.degradations.append(Degradation(hour, ramp, int(rng.integers(2, 10)), mechanism))
            hour += ramp
        else:
            plan.breaks.append(SuddenBreak(hour, int(rng.integers(1, 8))))
        hour += int(rng.integers(24 * 2, 24 * 9))
    return plan


def _simulate_pipeline(
    rng: np.random.Generator, project_id: str, pipeline_id: str, days: int, start: datetime, healthy: bool
) -> tuple[pd.DataFrame, SimulatedPipeline]:
    hours = days * 24
    plan = _plan(rng, pipeline_id, hours, healthy)
    t = np.arange(hours)
    starts = pd.date_range(start, periods=hours, freq="h") + pd.to_timedelta(
        rng.integers(0, 600, hours), unit="s"
    )
    hour_of_day = (t % 24).astype(float)
    weekday = ((t // 24) + start.weekday()) % 7

    peak_hour = rng.uniform(8, 16)
    daily = 1 + rng.uniform(0.25, 0.6) * np.cos(2 * np.pi * (hour_of_day - peak_hour) / 24)
    weekend = np.where(weekday >= 5, rng.uniform(0.45, 0.85), 1.0)
    growth = 1 + rng.uniform(-0.002, 0.006) * t / 24
    busy_day = rng.lognormal(0, 0.08, days)[np.arange(hours) // 24]  # some days simply carry more data
    load = daily * weekend * growth * busy_day * rng.lognormal(0, 0.08, hours)
    base_rows = rng.lognormal(11, 0.8)
    rows = np.maximum(1, base_rows * load).astype(np.int64)

    stress, mechanism_of = np.zeros(hours), np.array([""] * hours, dtype=object)
    failed = rng.random(hours) < 0.0005  # rare failures nobody can see coming
    for d in plan.degradations:
        end = min(hours, d.start_hour + d.ramp_hours)
        ramp = np.arange(end - d.start_hour) / d.ramp_hours
        stress[d.start_hour : end] = ramp**1.5
        mechanism_of[d.start_hour : end] = d.mechanism
        tail = slice(end, min(hours, end + d.repair_hours))
        stress[tail], mechanism_of[tail] = 1.0, d.mechanism
        failed[tail] = True
    for b in plan.breaks:
        failed[b.start_hour : min(hours, b.start_hour + b.hours)] = True
    # Near the end of a ramp the pipeline already fails now and then.
    failed |= rng.random(hours) < 0.35 * stress**4

    leak = np.where(mechanism_of == "memory_leak", stress, 0.0)
    drift = np.where(mechanism_of == "duration_drift", stress, 0.0)
    creep = np.where(mechanism_of == "error_creep", stress, 0.0)

    seconds_per_row = rng.lognormal(-7.5, 0.5)
    duration = (
        (rng.uniform(20, 120) + rows * seconds_per_row) * (1 + 2.5 * drift) * rng.lognormal(0, 0.1, hours)
    )
    cpu = np.clip(
        rng.uniform(10, 25) + rng.uniform(25, 50) * load / load.max() * 1.4 + rng.normal(0, 3, hours), 1, 100
    )
    base_memory = rng.uniform(300, 2_000)
    memory = base_memory * (0.6 + 0.4 * load / np.percentile(load, 95)) * rng.lognormal(0, 0.04, hours)
    limit = float(np.percentile(memory, 99) * rng.uniform(1.35, 1.9))
    memory = memory + leak * (limit * 1.05 - memory)
    disk = rng.uniform(5_000, 50_000) * (1 + rng.uniform(0, 0.004) * t / 24) + rng.normal(0, 50, hours)
    network = rows * rng.uniform(0.0005, 0.003) * rng.lognormal(0, 0.05, hours)
    error_rate = rng.uniform(1e-6, 2e-5) * (1 + 200 * creep**2)
    errors = rng.poisson(rows * error_rate)
    errors = np.where(failed, errors + rng.integers(10, 500, hours), errors)
    duration = np.where(failed, duration * rng.uniform(0.1, 1.0, hours), duration)

    day_index = t // 24
    cost_rate = np.ones(hours)
    if days >= 7 and rng.random() < 0.6:
        shift = int(rng.integers(days // 3, days - 3))
        plan.cost_shift_day = (start + timedelta(days=shift)).date()
        cost_rate = np.where(day_index >= shift, rng.choice([0.6, 1.5, 1.8]), 1.0)
    for _ in range(int(rng.integers(0, 3)) if days >= 3 else 0):
        day = int(rng.integers(1, days - 1))
        spike_day = (start + timedelta(days=day)).date()
        if spike_day not in plan.cost_spike_days and spike_day != plan.cost_shift_day:
            plan.cost_spike_days.append(spike_day)
            cost_rate = np.where(day_index == day, cost_rate * rng.uniform(2.0, 4.0), cost_rate)
    # Billed by data processed (warehouse pricing): slow runs cost time, not money.
    cost = rows * rng.uniform(2e-7, 2e-6) * cost_rate * rng.lognormal(0, 0.05, hours)

    ends = starts + pd.to_timedelta(duration, unit="s")
    frame = pd.DataFrame(
        {
            "project_id": project_id,
            "pipeline_id": pipeline_id,
            "run_id": [f"{pipeline_id}-{i}" for i in t],
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
    return frame, plan
