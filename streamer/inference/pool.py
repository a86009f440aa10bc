"""Model work off the event loop: Engines in worker processes.

dlib holds the GIL for a whole detection, so workers are processes (spawn),
each loading its models once. A worker that dies is replaced and the batch
retried once; the failure is counted.

Workers ignore SIGINT and SIGTERM: the service stops them itself (each finishes the batch in
hand). Ctrl-C in a terminal reaches the whole process group, and so does a service manager's
SIGTERM (systemd's default); a worker stopped on its own would die with a traceback, or be taken
for a crash and restarted while the service shuts down. A worker is started with both signals
blocked and ignores them before it imports anything of its own, so no moment of its start-up is
exposed. The workers of a broken pool are killed (SIGKILL) when it is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from streamer.inference.engine import Engine, EngineSpec, EngineStatus, FrameResult
from streamer.inference.photo import PhotoFace, describe_photo
from streamer.types import BatchTimings, Box, Region

log = logging.getLogger(__name__)

_engine: Engine | None = None  # one per worker process


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT and SIGTERM blocked (the mask is inherited; the
    parent's thread blocks them only while it starts the child, so the parent loses no signal)."""

    def start(self) -> None:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def _init_worker(spec: EngineSpec) -> None:
    global _engine
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # (one that came while it started is dropped)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
    if spec.nice:
        # model work is best effort (the newest frame wins); decoding, drawing and sending the
        # video in the service process must not wait for it when the CPU is full
        try:
            os.nice(spec.nice)
        except OSError as e:
            log.warning("could not lower the worker's CPU priority: %s", e)
    _engine = Engine(spec)
    _engine.warm_up()


def _status() -> EngineStatus:
    assert _engine is not None
    return _engine.status


def _run(
    images: Sequence[np.ndarray],
    skip: Sequence[Sequence[Box]] | None = None,
    regions: Sequence[Sequence[Region]] | None = None,
    streams: Sequence[str] | None = None,
) -> tuple[list[FrameResult], BatchTimings]:
    assert _engine is not None
    return _engine.run(images, skip, regions, streams)


def _describe_photo(image: np.ndarray, mirrored: bool, most: int = 0) -> list[PhotoFace]:
    assert _engine is not None
    return describe_photo(_engine, image, mirrored, most)


class WorkerCrashed(RuntimeError):
    pass


class WorkerPool:
    """An asyncio-facing pool of Engine worker processes."""

    def __init__(self, spec: EngineSpec, workers: int = 1, on_restart=None) -> None:
        self.spec = spec
        self.workers = workers
        self._on_restart = on_restart
        self._executor: ProcessPoolExecutor | None = None
        self.status: EngineStatus | None = None
        self.restarts = 0
        self.detect_max_side = spec.detect_max_side

    def _new_executor(self) -> ProcessPoolExecutor:
        ctx = _WorkerContext()
        return ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.spec,)
        )

    async def start(self) -> EngineStatus:
        """Start the workers and wait until their models are loaded."""
        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        self.status = await loop.run_in_executor(self._executor, _status)
        return self.status

    async def run(
        self,
        images: Sequence[np.ndarray],
        skip: Sequence[Sequence[Box]] | None = None,
        regions: Sequence[Sequence[Region]] | None = None,
        streams: Sequence[str] | None = None,
    ) -> tuple[list[FrameResult], BatchTimings]:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self._executor is None:
                raise RuntimeError("pool not started")
            executor = self._executor
            try:
                return await loop.run_in_executor(executor, _run, list(images), skip, regions, streams)
            except BrokenProcessPool as e:
                log.error("inference worker died (%s); restarting (attempt %d)", e, attempt)
                if self._on_restart:
                    self._on_restart()
                await self._restart(executor)
        raise WorkerCrashed("inference worker died twice on the same batch")

    async def describe_photo(self, image: np.ndarray, mirrored: bool, most: int = 0) -> list[PhotoFace]:
        """Every face of an RGB photo with its aligned chip and descriptor (photo.py; none described
        when there are more than ``most``), on a worker between the streams' batches. A worker that
        dies meanwhile is replaced, as on a batch, but the photo is not tried again (it may be what
        killed it): WorkerCrashed."""
        if self._executor is None:
            raise RuntimeError("pool not started")
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, self._photo_call, image, mirrored, most
            )
        except BrokenProcessPool as e:
            log.error("inference worker died describing a photo (%s); restarting", e)
            if self._on_restart:
                self._on_restart()
            await self._restart(executor)
            raise WorkerCrashed("the inference worker died describing the photo") from e

    _photo_call = staticmethod(_describe_photo)  # (what a worker runs: tests put a crash here)

    async def _restart(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is not broken:  # someone else already restarted it
            return
        self.restarts += 1
        leftover = list((broken._processes or {}).values())
        broken.shutdown(wait=False, cancel_futures=True)
        for p in leftover:  # (they ignore the SIGTERM the executor ends a broken pool's workers with)
            if p.is_alive():
                p.kill()
        self._executor = self._new_executor()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, _status)

    def worker_pids(self) -> list[int]:
        ex = self._executor
        return list(ex._processes) if ex is not None and ex._processes else []

    async def close(self) -> None:
        ex, self._executor = self._executor, None
        if ex is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: ex.shutdown(wait=True, cancel_futures=True)
            )
