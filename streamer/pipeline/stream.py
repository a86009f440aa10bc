"""One live stream: source -> face stage (detect when due, track always, draw) -> hub.

The display path never waits for the model path: every frame is drawn with the tracked
faces, which follow the image between detections, so output FPS follows input FPS even
when detection is slower. How old the newest detections are is a metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future

from streamer.metrics import DROP_DETECT_SKIPPED, Metrics
from streamer.outputs.hub import AnnotatedFrame, FrameHub
from streamer.pipeline.batcher import DetectionBatcher
from streamer.pipeline.events import EventHub
from streamer.pipeline.planner import RegionPlanner
from streamer.pipeline.tracking import BetweenLooks, FaceStage, Processed
from streamer.sources.base import Source
from streamer.track.tracker import TrackerRule
from streamer.types import Detections, Frame

log = logging.getLogger(__name__)


class Stream:
    def __init__(
        self,
        source: Source,
        batcher: DetectionBatcher,
        metrics: Metrics,
        render_pool: Executor,
        detect_every: int = 1,
        planner: RegionPlanner | None = None,
        rule: TrackerRule | None = None,
        between: BetweenLooks | None = None,
    ) -> None:
        self.id = source.id
        self.source = source
        self.batcher = batcher
        self.metrics = metrics
        self.render_pool = render_pool
        self.hub = FrameHub(self.id, metrics)
        self.detections: Detections | None = None  # the newest from the detector
        self.stage = FaceStage(self.id, detect_every, metrics, rule, planner, between)
        self.events = EventHub(self.id, metrics)
        self._processing: Future[Processed] | None = None
        self.task: asyncio.Task[None] | None = None
        self.started_at = time.time()
        # the stage is not thread-safe: one frame's processing, or one late plan, at a time
        self._stage_lock = asyncio.Lock()
        self._last: Frame | None = None  # the frame shown last, while the stream runs
        self._last_skipped = False  # it came while the detector was busy and has not gone there since
        self._late: set[asyncio.Task[None]] = set()

    def on_detections(self, d: Detections) -> None:
        if self.detections is None or d.frame_index >= self.detections.frame_index:
            self.detections = d
            self.stage.on_detections(d)
        if self._last is not None:
            # the detector is free now: send it the frame shown last rather than wait for the next
            # one (up to a frame interval of idle detector per round, and its answer that much later)
            t = asyncio.ensure_future(self._detect_last())
            self._late.add(t)
            t.add_done_callback(self._late.discard)

    async def _detect_last(self) -> None:
        try:
            async with self._stage_lock:
                frame = self._last
                if frame is None or self.batcher.busy(self.id) or not self.stage.due(frame.index):
                    return
                regions = await asyncio.wrap_future(self.render_pool.submit(self.stage.plan_last, frame))
                if self._last is not None:
                    self.batcher.submit(frame, self.on_detections, self.stage.skip_boxes(), regions)
                    self._last_skipped = False
        except Exception:  # the stream goes on: its next frame is planned as usual
            log.exception("stream %s: planning its last frame failed", self.id)
            self.metrics.errors.labels("stream").inc()

    def _count_skipped(self) -> None:
        """The frame shown last never went to the detector: count it (it is being superseded)."""
        if self._last_skipped:
            self._last_skipped = False
            self.metrics.frames_dropped.labels(self.id, DROP_DETECT_SKIPPED).inc()

    def when_done(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run ``callback()`` (a coroutine function) once the stream ends on its own or is stopped."""
        assert self.task is not None
        pending: set[asyncio.Task[object]] = set()

        def done(_: asyncio.Task[None]) -> None:
            t = asyncio.ensure_future(callback())
            pending.add(t)
            t.add_done_callback(pending.discard)

        self.task.add_done_callback(done)

    def start(self) -> None:
        self.metrics.stream_up.labels(self.id).set(0)
        self.task = asyncio.create_task(self._run(), name=f"stream-{self.id}")

    async def _run(self) -> None:
        m = self.metrics
        try:
            async for frame in self.source.frames():
                m.frames_in.labels(self.id).inc()
                async with self._stage_lock:
                    self._count_skipped()
                    # its last frame still at the detector: this one is shown with the tracked boxes
                    # and not planned for (a plan the detector never ran would mislead the planner
                    # about what it looked at); it may still go there if it is the last one shown
                    # when the detector answers
                    busy = self.batcher.busy(self.id)
                    due = False if busy else self.stage.due(frame.index)
                    draw = self.hub.watched
                    self._processing = self.render_pool.submit(self.stage.process, frame, draw, due)
                    out = await asyncio.wrap_future(self._processing)
                    if due:  # the plan is made on this frame's tracks and motion
                        self.batcher.submit(frame, self.on_detections, self.stage.skip_boxes(), out.regions)
                    self._last, self._last_skipped = frame, busy
                self.events.publish(out.events)
                dets = self.detections
                if dets is not None:
                    m.detection_age.labels(self.id).set(max(0.0, frame.captured_at - dets.captured_at))
                    dets = Detections(self.id, frame.index, frame.captured_at, out.faces)
                await self.hub.publish(AnnotatedFrame(frame, out.image, dets, self.hub.next_seq(), draw))
                m.frames_out.labels(self.id).inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream %s failed", self.id)
            m.errors.labels("stream").inc()
        finally:
            self._count_skipped()
            self._last = None
            self.batcher.forget(self.id)
            busy = self._processing
            if busy is not None and not busy.done():  # the stage is not thread-safe: let it finish
                await asyncio.gather(asyncio.wrap_future(busy), return_exceptions=True)
            if self._late:  # a late plan may be in the render pool
                await asyncio.gather(*self._late, return_exceptions=True)
            try:
                self.events.publish(self.stage.close(time.time()))
            except Exception:
                log.exception("stream %s: ending its tracks failed", self.id)
            self.events.close()
            await self.hub.close()

    async def stop(self) -> None:
        await self.source.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def info(self) -> dict[str, object]:
        st = self.source.state
        d = self.detections
        faces = self.stage.faces
        return {
            "id": self.id,
            "kind": self.source.kind,
            "source": self.source.describe(),
            "up": st.up,
            "error": st.error,
            "reconnects": st.reconnects,
            "frames": st.frames,
            "width": st.width,
            "height": st.height,
            "faces": [f.as_dict() for f in faces],
            "tracks": self.events.tracks(),
            "detection_age_s": round(time.time() - d.captured_at, 3) if d else None,
            "detections_stale": not self.batcher.backend_up,
        }
