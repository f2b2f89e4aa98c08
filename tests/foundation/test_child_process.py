"""Child processes for user-supplied work: exceptions come back, a late call kills the child (the
event loop keeps running meanwhile), a memory bomb ends in MemoryError there, and a new child serves
the next call."""

from __future__ import annotations

import asyncio
import time

import pytest

from aietl.shared.child_process import ChildTimeout, ChildWorker


def add(left: int, right: int) -> int:
    return left + right


def fail() -> None:
    raise KeyError("named in the child")


def spin() -> None:
    while True:
        pass


def grow() -> None:
    text = "x"
    while True:
        text += text


async def test_calls_errors_deadlines_and_memory_are_bounded() -> None:
    worker = ChildWorker(memory_limit=512 * 1_048_576, name="test child")
    try:
        assert await worker.call(add, 2, 3, timeout=30) == 5
        first = worker.pid
        with pytest.raises(KeyError, match="named in the child"):
            await worker.call(fail, timeout=5)
        assert worker.pid == first  # an exception does not cost the child

        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        with pytest.raises(ChildTimeout):
            await worker.call(spin, timeout=1.0)
        ticker.cancel()
        assert time.perf_counter() - started < 5 and ticks >= 10  # the loop ran while the child spun
        with pytest.raises(MemoryError):
            await worker.call(grow, timeout=30)
        assert await worker.call(add, 1, 1, timeout=30) == 2
        assert worker.pid != first  # the late child was killed and replaced
    finally:
        await worker.close()
