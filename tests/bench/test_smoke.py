"""Every benchmark suite runs at smoke scale (`AIETL_BENCH_SCALE=smoke`), each in a process of its
own as `make bench` runs it: an import or API change that breaks a suite fails the build. The
figures of this run mean nothing: they are neither asserted nor saved (bench-results/ is not written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import SUITES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)  # seconds alone; minutes on a machine shared with other jobs
@pytest.mark.parametrize("suite", SUITES)
def test_suite_runs_at_smoke_scale(suite: str, tmp_path: Path) -> None:
    env = {**os.environ, "AIETL_BENCH_SCALE": "smoke", "PYTHONPATH": str(ROOT)}
    env.pop("AIETL_BENCH_PEERS", None)  # the smoke run's default: peers that need their own venv skipped
    run = subprocess.run(
        [sys.executable, "-m", "bench", suite],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=590,
    )
    assert run.returncode == 0, f"bench {suite} failed:\n{run.stdout[-3_000:]}\n{run.stderr[-6_000:]}"
    assert f"  {suite}.suite_seconds: " in run.stdout, run.stdout[-3_000:]
    assert f"{suite} at smoke (peers skipped; figures not reported)" in run.stderr
    if suite == "features":  # our side ran, and the output says the peer's did not
        assert '"inprocess_1x50": {"ours"' in run.stdout
        assert "skipped: Feast runs in its own venv" in run.stdout
    assert not (tmp_path / "bench-results").exists(), "smoke figures must not be saved"
