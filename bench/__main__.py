"""`python -m bench [NAME ...]`: run the benchmarks, print each figure, save JSON to bench-results/."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

SUITES = ("foundation", "drift", "features", "templates", "predict", "vector_sink", "gateway_load", "kafka")
RESULTS = Path("bench-results")


def main(argv: list[str]) -> int:
    selected = argv or list(SUITES)
    unknown = sorted(set(selected) - set(SUITES))
    if unknown:
        print(f"unknown benchmark suites: {unknown}; choose from {SUITES}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in selected:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"bench.{name}":
                raise
            print(f"[{name}] no benchmark yet", file=sys.stderr)
            continue
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        figures = module.run()
        figures["suite_seconds"] = round(time.perf_counter() - started, 2)
        (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
        for key, value in figures.items():
            print(f"  {name}.{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
