"""`python -m bench [SUITE ...]`: run the suites of `bench.SUITES`, print each figure, save JSON to
bench-results/ (not in the smoke run). A failing suite is reported and the others still run; the
exit status is 1 when any failed."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import SUITES, Scale

RESULTS = Path("bench-results")


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def run_suite(name: str, scale: Scale) -> dict[str, Any]:
    module = importlib.import_module(f"bench.{name}")
    load_before, started = _load(), time.perf_counter()
    figures: dict[str, Any] = module.run(scale)
    figures["suite_seconds"] = round(time.perf_counter() - started, 2)
    figures["load_average_1_5_15"] = {"start": load_before, "end": _load()}
    figures["scale"] = scale.describe()
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return figures


def main(argv: list[str]) -> int:
    selected = argv or list(SUITES)
    unknown = sorted(set(selected) - set(SUITES))
    if unknown:
        print(f"unknown benchmark suites: {unknown}; choose from {SUITES}", file=sys.stderr)
        return 2
    scale = Scale.from_env()
    print(f"bench: {', '.join(selected)} at {scale.describe()}; load {_load()}", file=sys.stderr)
    failed = []
    for name in selected:
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        try:
            figures = run_suite(name, scale)
        except Exception:
            traceback.print_exc()
            print(f"[{name}] FAILED", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        if not scale.smoke:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
        for key, value in figures.items():
            print(f"  {name}.{key}: {json.dumps(value, default=str)}", flush=True)
    if failed:
        print(f"bench: failed suites: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
