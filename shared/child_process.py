"""User-supplied work in a child process the event loop can wait for, bound in time and memory, and kill.

A thread cannot stop CPU-bound Python (a Jinja2 loop, a huge string) nor give back its memory, so
work a request controls runs in a spawned child: calls travel over a pipe, the event loop waits on
the pipe's file descriptor (never blocked), a call that outlives its deadline gets the child killed
and restarted, and the child's address space is capped so a memory bomb ends in `MemoryError`
there instead of swapping the whole platform out.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import resource
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
STARTUP_TIMEOUT_SECONDS = 60.0


class ChildTimeout(TimeoutError):
    """The call ran past its deadline; the child was killed."""


class ChildDied(RuntimeError):
    """The child ended while working on the call (killed by the system, crashed)."""


def _serve(connection: Connection, memory_limit: int | None, setup: str | None, argument: str) -> None:
    """The child's loop: apply the memory cap, run `setup(argument)` ("module:function"), answer calls."""
    if memory_limit is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        if setup is not None:
            module, _, name = setup.partition(":")
            function = getattr(importlib.import_module(module), name)
            function(argument) if argument else function()
    except BaseException as error:
        connection.send((False, RuntimeError(f"setup failed: {type(error).__name__}: {error}")))
        return
    connection.send((True, "ready"))
    while True:
        try:
            function, args = connection.recv()
        except EOFError:
            return
        except Exception as unreadable:
            connection.send((False, RuntimeError(f"{type(unreadable).__name__}: {unreadable}")))
            continue
        try:
            reply: tuple[bool, Any] = (True, function(*args))
        except BaseException as error:
            reply = (False, error)
        try:
            connection.send(reply)
        except Exception as unsendable:
            connection.send((False, RuntimeError(f"{type(unsendable).__name__}: {unsendable}")))


class ChildWorker:
    """One spawned process serving calls one at a time; restarted after a timeout or a crash.

    The child is a fresh interpreter (`python -m aietl.shared.child_process`), so nothing of the parent's
    state (or its `__main__`) is copied into it. `setup` ("module:function") runs once in each new
    child (given `setup_argument` when set); `memory_limit` caps the child's address space in bytes.
    Functions sent must be importable.
    """

    def __init__(
        self,
        *,
        memory_limit: int | None = None,
        setup: str | None = None,
        setup_argument: str = "",
        name: str = "child",
    ) -> None:
        self.memory_limit = memory_limit
        self.setup = setup
        self.setup_argument = setup_argument
        self.name = name
        self._process: Any = None
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def _start(self) -> Connection:
        """The running child's pipe; a new child first, ready once its imports and `setup` are done."""
        if self._process is not None and self._process.poll() is None and self._connection is not None:
            return self._connection
        self._kill()
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "aietl.shared.child_process", str(theirs.fileno())]
        command += [str(self.memory_limit or ""), self.setup or "", self.setup_argument]
        # forking a large parent takes a moment: not on the event loop
        process = await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL),  # noqa: S603
        )
        theirs.close()
        parent = Connection(ours.detach())
        self._process, self._connection = process, parent
        ok, value = await self._reply(parent, STARTUP_TIMEOUT_SECONDS, "starting")
        if not ok:
            self._kill()
            raise value
        return parent

    async def _reply(self, connection: Connection, timeout: float, doing: str) -> tuple[bool, Any]:
        """The child's (ok, value) answer; the child is killed when it is late or has ended."""
        if not await _readable(connection, timeout):
            self._kill()
            raise ChildTimeout(f"{self.name} did not finish {doing} within {timeout:g} s")
        try:
            return connection.recv()
        except (EOFError, OSError):
            self._kill()
            raise ChildDied(f"{self.name} ended while {doing}") from None

    async def call(self, function: Callable[..., T], *args: Any, timeout: float) -> T:
        """`function(*args)` in the child; its exception is raised here as it was raised there."""
        async with self._lock:
            connection = await self._start()
            connection.send((function, args))
            ok, value = await self._reply(connection, timeout, "working")
        if ok:
            return value
        raise value

    def _kill(self) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            connection.close()
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=5)

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                with contextlib.suppress(OSError):
                    self._connection.close()
                self._connection = None
            if self._process is not None:
                process, self._process = self._process, None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.get_running_loop().run_in_executor(None, process.wait, 5)
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=5)


async def _readable(connection: Connection, timeout: float) -> bool:
    """True when the child answered (or ended) within `timeout`, waiting on the pipe without a thread."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    descriptor = connection.fileno()
    loop.add_reader(descriptor, lambda: None if ready.done() else ready.set_result(True))
    try:
        return await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(descriptor)


class ChildPool:
    """A few `ChildWorker`s; a call takes whichever is idle, so one slow call does not stall the rest."""

    def __init__(self, size: int, **worker: Any) -> None:
        self._workers = [ChildWorker(**worker) for _ in range(size)]
        self._idle: asyncio.Queue[ChildWorker] | None = None

    async def call(self, function: Callable[..., T], *args: Any, timeout: float) -> T:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        worker = await self._idle.get()
        try:
            return await worker.call(function, *args, timeout=timeout)
        finally:
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        for worker in self._workers:
            await worker.close()


if __name__ == "__main__":
    descriptor, limit, setup_name, setup_argument = sys.argv[1:5]
    _serve(Connection(int(descriptor)), int(limit) if limit else None, setup_name or None, setup_argument)
