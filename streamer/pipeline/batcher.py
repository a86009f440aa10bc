"""Cross-stream batching for the detector: newest frame per stream, one batch per model call.

Each stream has at most one frame waiting and one in flight. A batch goes out
when ``max_batch`` frames wait, when every stream with work has a frame
waiting, or ``max_wait`` after the first frame arrived, whichever is first.
A dead camera never holds a batch back: only streams with a waiting frame count.
When more streams wait than a batch holds, the ones served longest ago go first,
so every stream's boxes are refreshed in turn (round robin), none starves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from streamer.detect.proposals import cost
from streamer.inference.engine import FrameResult
from streamer.inference.pool import WorkerPool
from streamer.inference.triton_client import BackendUnavailable, TritonPool
from streamer.metrics import DROP_DETECT_SKIPPED, Metrics
from streamer.types import Box, Detections, Frame, Region

log = logging.getLogger(__name__)

ResultCallback = Callable[[Detections], None]
Job = tuple[Frame, ResultCallback, tuple[Box, ...], tuple[Region, ...]]


def detector_pixels(frame: Frame, regions: tuple[Region, ...], pool: WorkerPool | TritonPool) -> int:
    """The detection work, in detector pixels: the regions at their scales (a HOG proposal scan at
    its cost, ``proposals.PROPOSE_COST`` a pixel, as the planner budgets it), or the whole frame as
    scaled."""
    if regions:
        return sum(cost(r) for r in regions)
    h, w = frame.image.shape[:2]
    side = pool.detect_max_side
    s = min(1.0, side / max(h, w)) if side > 0 else 1.0
    return round(w * s) * round(h * s)


class DetectionBatcher:
    def __init__(
        self,
        pool: WorkerPool | TritonPool,
        metrics: Metrics,
        max_batch: int = 4,
        max_wait_s: float = 0.01,
        concurrency: int = 1,
        active_streams: Callable[[], set[str]] | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: dict[str, tuple[Frame, ResultCallback]] = {}
        self._skip: dict[str, tuple[Box, ...]] = {}
        self._regions: dict[str, tuple[Region, ...]] = {}
        self._in_flight: set[str] = set()
        self._served: dict[str, int] = {}  # stream -> number of the batch that last took its frame
        self._gone: set[str] = set()  # forgotten while a frame was in flight: its answer is not wanted
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0
        self._dispatched = 0
        # Streams expected to send frames soon (live, not in flight): a batch waits for them.
        self.active_streams: Callable[[], set[str]] = active_streams or set

    @property
    def backend_up(self) -> bool:
        """False while no model server answers (backend triton): the boxes drawn are stale."""
        return bool(getattr(self.pool, "up", True))

    def submit(
        self,
        frame: Frame,
        on_result: ResultCallback,
        skip: tuple[Box, ...] = (),
        regions: tuple[Region, ...] = (),
    ) -> None:
        """Offer a frame for detection; a waiting older frame of the same stream is dropped.

        ``skip``: boxes whose faces need no classifying (tracks with settled labels).
        ``regions``: where to look (empty: the whole frame)."""
        self._gone.discard(frame.stream)  # a new stream under a departed one's id
        if frame.stream in self._pending:
            self.metrics.frames_dropped.labels(frame.stream, DROP_DETECT_SKIPPED).inc()
        self._pending[frame.stream] = (frame, on_result)
        self._skip[frame.stream] = skip
        self._regions[frame.stream] = regions
        self.metrics.queue_depth.set(len(self._pending))
        self._wake.set()

    def busy(self, stream: str) -> bool:
        """Whether the stream has a frame waiting for or in the detector."""
        return stream in self._pending or stream in self._in_flight

    def forget(self, stream: str) -> None:
        """The stream is gone: drop its waiting frame, and the answer for its frame in flight."""
        self._pending.pop(stream, None)
        self._skip.pop(stream, None)
        self._regions.pop(stream, None)
        self._served.pop(stream, None)
        if stream in self._in_flight:
            self._gone.add(stream)
        self.metrics.queue_depth.set(len(self._pending))

    def _ready(self) -> list[str]:
        return [s for s in self._pending if s not in self._in_flight]

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="detection-batcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._process(batch))
            # the task owns the batch now: kept here, it would keep the frames and streams of a
            # departed peer alive until the next batch, which may never come
            del batch
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _collect(self) -> list[Job]:
        while not self._ready():
            self._wake.clear()
            await self._wake.wait()
        deadline = time.monotonic() + self.max_wait_s
        while len(self._ready()) < self.max_batch:
            still_to_come = self.active_streams() - self._in_flight - set(self._pending)
            if not still_to_come or time.monotonic() >= deadline:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        # least recently served first (never served: first of all), then the oldest frame
        ready = sorted(
            self._ready(), key=lambda s: (self._served.get(s, -1), self._pending[s][0].captured_at)
        )[: self.max_batch]
        self._dispatched += 1
        for s in ready:
            self._served[s] = self._dispatched
        batch = [(*self._pending.pop(s), self._skip.pop(s, ()), self._regions.pop(s, ())) for s in ready]
        self._in_flight.update(ready)
        self.metrics.queue_depth.set(len(self._pending))
        return batch

    async def _process(self, batch: list[Job]) -> None:
        try:
            frames = [f for f, _, _, _ in batch]
            self.metrics.batch_size.labels("detector").observe(len(frames))
            try:
                results, timings = await self.pool.run(
                    [f.image for f in frames],
                    [k for _, _, k, _ in batch],
                    [r for _, _, _, r in batch],
                    streams=[f.stream for f in frames],
                )
            except asyncio.CancelledError:
                raise
            except BackendUnavailable:
                # counted and logged by the backend; the streams keep their last boxes (growing stale)
                self.batches += 1
                return
            except Exception as e:
                log.exception("detection batch of %d failed", len(frames))
                self.metrics.errors.labels("inference").inc()
                results = [FrameResult(error=str(e))] * len(frames)
                timings = None
            self.batches += 1
            if timings is not None:
                self.metrics.stage_seconds.labels("detect").observe(timings.detect_s)
                if timings.classifier_batches:
                    self.metrics.stage_seconds.labels("classify").observe(timings.classify_s)
                for name, n in timings.classifier_batches.items():
                    self.metrics.batch_size.labels(name).observe(n)
                for _name in timings.classifier_errors:
                    self.metrics.errors.labels("classifier").inc()
                if timings.oom_splits:
                    self.metrics.errors.labels("out_of_memory").inc(timings.oom_splits)
            for (frame, callback, _, regions), result in zip(batch, results, strict=True):
                if frame.stream in self._gone:  # no metrics series, no callback for a departed stream
                    continue
                if result.error is not None:
                    self.metrics.errors.labels("bad_frame").inc()
                    log.warning(
                        "stream %s frame %d not analysed: %s", frame.stream, frame.index, result.error
                    )
                    continue
                self.metrics.detections.labels(frame.stream).inc()
                self.metrics.detect_pixels.labels(frame.stream).inc(
                    detector_pixels(frame, regions, self.pool)
                )
                try:
                    callback(Detections(frame.stream, frame.index, frame.captured_at, result.faces, regions))
                except Exception:
                    log.exception("detection callback of stream %s failed", frame.stream)
        finally:
            for frame, _, _, _ in batch:
                self._in_flight.discard(frame.stream)
                self._gone.discard(frame.stream)
            self._slots.release()
            if self._ready():
                self._wake.set()
