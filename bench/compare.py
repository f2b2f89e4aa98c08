"""Side-by-side comparisons with a peer that a second run confirms: one place for every suite.

- The two sides are interleaved: in each round, each case is measured on one side, then at once on
  the other, the first side alternating from round to round (ABBA...), so drift in the machine's
  load falls on both; at least five rounds (`Scale.rounds`).
- Both sides get the same warm-up (one unrecorded measurement of each case before the first round)
  and the same process state (side processes freeze their start-up objects alike: `bench.sides`).
- Per round and case the ratio says how many times better ours is: the peer's latency over ours at
  p50 and at p99, or our rate over the peer's. The report gives its median and spread (min-max) and
  the 1-minute load average over the rounds; a goal counts as met only when the worst round meets it.
- What the two sides answered is compared too (`Measurement.info`: response bytes, rows returned):
  where it differs, the report says so beside the figures.

A side is anything with `name` and `measure(case, repeat) -> Measurement`: an object of this
process (an HTTP client timing a server), or `SideProcess`, a process of its own speaking
`bench.sides`' protocol (e.g. a peer in its own venv).
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from bench.sides import SIDE_FD, quantile


@dataclass
class Measurement:
    samples: list[float] | None = None  # seconds per operation
    rate: float | None = None  # operations per second
    cpu_seconds: float | None = None  # CPU time of this process per operation, beside a rate
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Measurement:
        return cls(
            answer.get("samples"), answer.get("rate"), answer.get("cpu_seconds"), answer.get("info", {})
        )


class Side(Protocol):
    name: str

    def measure(self, case: str, repeat: int) -> Measurement: ...


@dataclass(frozen=True)
class Case:
    """`goals`: the least ratio (ours better by) each statistic must reach in the worst round, e.g.
    {"p50": 4, "p99": 3} for a latency, {"rate": 3} for a throughput."""

    name: str
    repeat: int
    kind: Literal["latency", "rate"] = "latency"
    warmup: int = 0
    goals: dict[str, float] = field(default_factory=dict)


class SideProcess:
    """A side in a process of its own (`argv`), answering `bench.sides` requests; its stderr goes
    to a log file whose tail is shown when it fails."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600
    ):
        self.name, self.timeout = name, timeout
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        answers, theirs = os.pipe()
        self.process = subprocess.Popen(  # noqa: S603 - our own side scripts
            argv,
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {}), SIDE_FD: str(theirs)},
            pass_fds=(theirs,),
        )
        os.close(theirs)
        self._answers = os.fdopen(answers)
        self.info: dict[str, Any] = self._read()["info"]

    def _read(self) -> dict[str, Any]:
        ready, _, _ = select.select([self._answers], [], [], self.timeout)
        line = self._answers.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"side {self.name} stopped answering; its log ends:\n{self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"side {self.name} failed: {answer['error']}")
        return answer

    def measure(self, case: str, repeat: int) -> Measurement:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"case": case, "repeat": repeat}) + "\n")
        self.process.stdin.flush()
        return Measurement.of(self._read())

    def log_tail(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-3_000:]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._answers.close()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> SideProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


LABELS = {"rate": "per_s", "rate_per_cpu_s": "per_cpu_s"}  # how a rate's figures are named in reports


def _statistics(measurement: Measurement) -> dict[str, float]:
    if measurement.samples is not None:
        samples = measurement.samples
        return {"p50": quantile(samples, 0.50) * 1_000, "p99": quantile(samples, 0.99) * 1_000}
    if measurement.rate is None:
        raise ValueError("a measurement needs samples or a rate")
    if measurement.cpu_seconds:
        return {"rate": measurement.rate, "rate_per_cpu_s": 1 / measurement.cpu_seconds}
    return {"rate": measurement.rate}


def _ratio(statistic: str, ours: float, peer: float) -> float:
    """How many times better ours is: lower latency, higher rate."""
    return ours / peer if statistic.startswith("rate") else peer / ours


def _spread(values: list[float], digits: int = 2) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def _kilobytes(value: Any) -> str:
    return f"{value / 1_000:.1f} KB" if isinstance(value, int | float) else str(value)


def _differences(ours: Side, peer: Side, ours_info: dict[str, Any], peer_info: dict[str, Any]) -> list[str]:
    said = []
    for key in sorted(set(ours_info) & set(peer_info)):
        if ours_info[key] != peer_info[key]:
            show = _kilobytes if key.endswith("bytes") else str
            said.append(
                f"{key} differs: {ours.name} {show(ours_info[key])}, {peer.name} {show(peer_info[key])}"
            )
    return said


def compare(
    ours: Side, peer: Side | None, cases: list[Case], rounds: int, *, skipped: str = ""
) -> dict[str, Any]:
    """Interleave `ours` and `peer` over `rounds` rounds of every case. Without a peer (`skipped`
    says why), our side alone goes through the same rounds, so the smoke run exercises it."""
    sides: list[Side] = [ours] if peer is None else [ours, peer]
    for case in cases:
        if case.warmup:
            for side in sides:
                side.measure(case.name, case.warmup)
    per_case: dict[str, dict[str, list[dict[str, float]]]] = {
        c.name: {s.name: [] for s in sides} for c in cases
    }
    infos: dict[str, dict[str, dict[str, Any]]] = {c.name: {} for c in cases}
    loads = []
    for number in range(rounds):
        for case in cases:
            for side in sides if number % 2 == 0 else sides[::-1]:
                measured = side.measure(case.name, case.repeat)
                per_case[case.name][side.name].append(_statistics(measured))
                infos[case.name][side.name] = measured.info
        loads.append(os.getloadavg()[0])
        print(f"    round {number + 1}/{rounds} done (load {loads[-1]:.2f})", file=sys.stderr, flush=True)
    report: dict[str, Any] = {
        "rounds": rounds,
        "method": "interleaved: each case on one side then the other, first side alternating per round",
        "load_average_1m": _spread(loads),
    }
    if peer is None:
        report["peer"] = f"skipped: {skipped}" if skipped else "skipped"
    for case in cases:
        report[case.name] = _case_report(case, ours, peer, per_case[case.name], infos[case.name])
    return report


def _case_report(
    case: Case,
    ours: Side,
    peer: Side | None,
    rounds: dict[str, list[dict[str, float]]],
    infos: dict[str, Any],
) -> dict[str, Any]:
    digits = 0 if case.kind == "rate" else 3
    report: dict[str, Any] = {}
    for side, figures in rounds.items():
        report[side] = {
            LABELS.get(statistic, f"{statistic}_ms"): _spread([f[statistic] for f in figures], digits)
            for statistic in figures[0]
        }
        if infos.get(side):
            report[side]["answer"] = infos[side]
    if peer is None:
        return report
    worst: dict[str, float] = {}
    for statistic in rounds[ours.name][0]:
        ratios = [
            _ratio(statistic, o[statistic], p[statistic])
            for o, p in zip(rounds[ours.name], rounds[peer.name], strict=True)
        ]
        report[f"ratio_{statistic}"] = _spread(ratios)
        worst[statistic] = min(ratios)
    if case.goals:
        missed = [f"{s} {worst[s]:.2f}x < {goal:g}x" for s, goal in case.goals.items() if worst[s] < goal]
        wanted = ", ".join(f"{s} >= {goal:g}x" for s, goal in case.goals.items())
        report["goal"] = f"{wanted} in the worst round: " + (
            f"MISSED ({'; '.join(missed)})" if missed else "met"
        )
    differences = _differences(ours, peer, infos.get(ours.name, {}), infos.get(peer.name, {}))
    if differences:
        report["answers_differ"] = differences
    return report
