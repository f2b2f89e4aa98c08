"""Benchmarks (`make bench`, `python -m bench [SUITE ...]`).

The contract of a suite (so that a new one is one module and one line):

- a module `bench/<name>.py` with `run(scale: Scale) -> dict[str, Any]`: it measures and returns its
  figures (JSON-able; nested dicts are fine). It raises when it cannot measure what it claims: a
  suite that fails fails `make bench` and the CI smoke, it never returns partial figures silently;
- every size, count and duration comes from `scale` (`scale.count(full, smoke=...)`,
  `scale.seconds(...)`), so `AIETL_BENCH_SCALE=smoke` runs the suite in seconds;
- a comparison with a peer (Feast, raw pymilvus, ...) goes through `bench.compare`, which
  interleaves the two sides in rounds and reports the ratio's median and spread, the load average
  and whether a goal held in the worst round;
- it is registered in `SUITES` below, in the order `make bench` runs them.

`AIETL_BENCH_SCALE`: `smoke` (tiny sizes, two rounds, peers that need their own install skipped:
the CI smoke run, `tests/bench/test_smoke.py`, whose figures are not reported), a float (1 = the
full benchmark, 0.1 = a quick look), default 1. `AIETL_BENCH_PEERS=1` or `0` forces the peers on
or off at any scale.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SUITES = ("foundation", "drift", "features", "templates", "predict", "vector_sink", "gateway_load", "kafka")
SMOKE_ROUNDS = 2
ROUNDS = 5  # the fewest rounds a comparison with a peer may report


@dataclass(frozen=True)
class Scale:
    """How big a run is: `factor` scales sizes; `smoke` is the CI run, whose figures mean nothing."""

    factor: float = 1.0
    smoke: bool = False
    peers: bool = True

    @classmethod
    def from_env(cls) -> Scale:
        raw = os.environ.get("AIETL_BENCH_SCALE", "1").strip().lower()
        smoke = raw == "smoke"
        if smoke:
            factor = 0.0
        else:
            try:
                factor = float(raw)
            except ValueError:
                raise ValueError(f"AIETL_BENCH_SCALE must be 'smoke' or a number, not {raw!r}") from None
            if factor <= 0:
                raise ValueError(f"AIETL_BENCH_SCALE must be positive, not {raw!r}")
        peers = os.environ.get("AIETL_BENCH_PEERS", "").strip()
        return cls(factor=factor, smoke=smoke, peers=peers == "1" if peers else not smoke)

    def count(self, full: int, *, smoke: int) -> int:
        """`full` scaled by the factor (at least 1), or `smoke` in the smoke run."""
        return smoke if self.smoke else max(1, round(full * self.factor))

    def seconds(self, full: float, *, smoke: float) -> float:
        return smoke if self.smoke else full * self.factor

    @property
    def rounds(self) -> int:
        """Rounds of an interleaved comparison: five at any real scale."""
        return SMOKE_ROUNDS if self.smoke else ROUNDS

    def describe(self) -> str:
        peers = "peers on" if self.peers else "peers skipped"
        return f"smoke ({peers}; figures not reported)" if self.smoke else f"scale {self.factor:g} ({peers})"
