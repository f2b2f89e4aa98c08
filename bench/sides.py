"""The side of a comparison that runs in a process of its own (standard library only: the peer's
process imports this file from its own venv, e.g. `bench/feast_side.py` under Feast's).

The parent (`bench.compare.SideProcess`) writes one JSON line per request, `{"case", "repeat"}`;
the side answers one JSON line: `{"samples": [seconds, ...]}` (latencies) or `{"rate": n}`
(operations per second), with `info` (what the two sides' answers should agree on: body size, rows
returned, ...), or `{"error": traceback}`. Its first line is `{"ready": true, "info": {...}}`. The
answers go to a pipe of their own (the descriptor in `AIETL_BENCH_SIDE_FD`), so whatever a library
prints cannot corrupt them.
"""

from __future__ import annotations

import gc
import http.client
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

Handler = Callable[[int], dict[str, Any]]
SIDE_FD = "AIETL_BENCH_SIDE_FD"


def quantile(samples: list[float], q: float) -> float:
    """The nearest-rank quantile (p99 of 2,000 samples is the 1,980th smallest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def freeze_startup_objects() -> None:
    """What every side process does once set up, ours and the peer's alike (as `aietl` processes
    do): collect, then move what start-up allocated out of the collector's sight."""
    gc.collect()
    gc.freeze()


def serve(handlers: dict[str, Handler], info: dict[str, Any] | None = None) -> None:
    """Answer the parent's requests until stdin closes; `handlers[case](repeat)` measures one case."""
    protocol = os.fdopen(int(os.environ[SIDE_FD]), "w", buffering=1)
    freeze_startup_objects()
    protocol.write(json.dumps({"ready": True, "info": info or {}}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = handlers[request["case"]](int(request["repeat"]))
        except Exception:
            answer = {"error": traceback.format_exc()[-3_000:]}
        protocol.write(json.dumps(answer) + "\n")


def post_json(connection: http.client.HTTPConnection, path: str, body: str, headers: dict[str, str]) -> bytes:
    """POST over one kept-alive connection with the standard library's client (httpx cost ~0.5 ms
    of client CPU per request, more than the servers measured). A connection the server closed is
    opened again once, as any keep-alive client does."""
    for attempt in (1, 2):
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            break
        except ConnectionError:
            connection.close()
            if attempt == 2:
                raise
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    return data
