"""The predict worker's trainer: trains failure models in the background, never in a request.

Every `AIETL_PREDICT_TRAINER_CHECK_SECONDS`, and once new runs have stopped arriving for 10 s,
it decides whether to train (no model yet; the latest is older than
`AIETL_PREDICT_RETRAIN_INTERVAL_HOURS`; or `AIETL_PREDICT_RETRAIN_NEW_RUNS_SHARE` more runs are
stored than it learnt from), then scores predictions whose horizon has passed.

Training runs in a separate process (one worker, spawned: no inherited threads or locks), so the
event loop this process shares with the gateway under `aietl up` keeps answering; the history
goes in, arrays-only model bytes and metrics come out, and the version is stored in the registry
(`predict_model_versions`) before any process serves it. A training another process started (a
second replica) is not duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from aietl.services.predict.domain import NotAnswerable
from aietl.services.predict.domain import failure as failure_domain
from aietl.services.predict.service import MIN_NEW_RUNS_TO_RETRY, PredictService, service_of
from aietl.services.runtime import Runtime
from aietl.shared import metrics

log = structlog.get_logger(__name__)
QUIET_SECONDS = 10.0  # a backfill in several requests is one change


class Trainer:
    def __init__(self, service: PredictService) -> None:
        self.service = service
        self._pool: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next tick tries again; the last good model keeps serving
                log.exception("predict trainer tick failed")
            await self._next_check()

    async def _next_check(self) -> None:
        """Until the check interval is over, or runs arrived and then nothing more for a moment
        (a bulk backfill in several requests is one change, not one training per request)."""
        arrived = self.service.runs_arrived
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), self.service.config.trainer_check_seconds)
        while arrived.is_set():
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), QUIET_SECONDS)

    async def tick(self) -> None:
        await self.train_if_due()
        with contextlib.suppress(NotAnswerable):
            await (
                self.service.current_model()
            )  # a model another replica trained: serve it and export its figures
        await self.service.outcomes.resolve(datetime.now(UTC))

    async def train_if_due(self) -> int | None:
        now = datetime.now(UTC)
        config = self.service.config
        registry = self.service.registry
        stored = await self.service.store.count_runs_since(now - timedelta(days=config.training_days))
        if not stored or await registry.running(now) is not None:
            return None
        ready, latest = await registry.latest("ready"), await registry.latest()
        interval = timedelta(hours=config.retrain_interval_hours)
        if (
            latest is not None
            and latest.status in ("refused", "failed")
            and (ready is None or latest.id > ready.id)
        ):
            retry = now - (latest.finished_at or latest.started_at) > interval
            if not retry and stored - latest.stored_runs < MIN_NEW_RUNS_TO_RETRY:
                return None  # the data has not changed enough to change the answer
        elif ready is not None:
            old = now - ready.started_at > interval
            grown = stored - ready.stored_runs >= config.retrain_new_runs_share * max(ready.stored_runs, 1)
            if not (old or grown):
                return None
        return await self.train(stored)

    async def train(self, stored: int | None = None) -> int:
        """Train one version now (in the training process); returns its registry id."""
        async with self._lock:
            now = datetime.now(UTC)
            config, registry = self.service.config, self.service.registry
            since = now - timedelta(days=config.training_days)
            if stored is None:
                stored = await self.service.store.count_runs_since(since)
            horizons = list(self.service.training_horizons())
            version = await registry.start(horizons, stored)
            try:
                runs = await self.service.store.all_runs(since)
                result = await self._run(runs, horizons, now, config.forest_trees)
            except Exception as error:
                await registry.finish(
                    version, "failed", detail={"message": f"{type(error).__name__}: {error}"}
                )
                raise
            seconds = float(result["seconds"])
            timing: dict[str, Any] = {
                "training_seconds": seconds,
                "training_cpu_seconds": float(result["cpu_seconds"]),
            }
            metrics.FAILURE_MODEL_TRAINING_SECONDS.observe(seconds)
            if result["status"] == "refused":
                await registry.finish(version, "refused", detail=result["detail"], **timing)
                log.info("failure model not trained", reason=result["detail"]["message"])
                return version
            summary = result["summary"]
            await registry.finish(
                version,
                "ready",
                model=result["model"],
                horizons=summary["horizons_hours"],
                window_start=summary["training_window"][0],
                window_end=summary["training_window"][1],
                training_runs=summary["training_runs"],
                positives=summary["positives"],
                data_hash=summary["data_hash"],
                metrics=result["metrics"],
                **timing,
            )
            model = await asyncio.to_thread(failure_domain.FailureModel.from_bytes, result["model"])
            self.service.use_model(version, model)
            log.info(
                "failure model trained",
                version=version,
                runs=summary["training_runs"],
                seconds=round(seconds, 1),
            )
            return version

    async def _run(self, runs: Any, horizons: list[float], now: datetime, trees: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor(), failure_domain.train_job, runs, horizons, now, trees
            )
        except BrokenProcessPool:
            self._pool = None  # the training process died (e.g. out of memory): a fresh one next time
            raise

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def close(self) -> None:
        """Stop the training process too: a training still running must not hold the shutdown
        (the executor's exit hook would wait for it)."""
        if self._pool is not None:
            processes = list(getattr(self._pool, "_processes", {}).values())  # no public handle before 3.14
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            self._pool = None


COMPONENT = "predict.trainer"


def get_trainer(runtime: Runtime) -> Trainer:
    """The process's trainer (the predict worker's), running in the background once the workers consume."""
    return runtime.component(COMPONENT, lambda: _start(service_of(runtime)))


def _start(service: PredictService) -> Trainer:
    runtime = service.runtime
    trainer = Trainer(service)

    async def start() -> None:  # once the workers consume; cancelled when the runtime closes
        runtime.background(trainer.run_forever())

    runtime.on_start(start)
    runtime.on_shutdown(trainer.close)
    return trainer
