"""One live stream: source -> face stage (detect when due, track always, draw) -> hub.

Without ``sync_output``, the display path never waits for the model path: every frame is drawn
with the tracked faces, which follow the image between detections, so output FPS follows input
FPS even when detection is slower. How old the newest detections are is a metric.

With it (``sync_max_hold_s`` > 0), a frame sent to the detector is held, tracked to but not
drawn, and so are the frames that come after it while the detector works; when the answer
comes it is applied on the frame it was taken from, the held frames are tracked forward from
there, and each goes out with the boxes as of its own content (a face that came with a cut or
walked in is boxed from the frame it shows on). The newest of them, if due, goes to the
detector and is held in turn. The pacer sends them at the source's frame rate, late by the
hold; a hold past ``sync_max_hold_s`` (or a detector that drops the frame) lets them go out
with the tracked boxes, so a slow detector never stalls the video.
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
from streamer.pipeline.pacer import Pacer
from streamer.pipeline.planner import RegionPlanner
from streamer.pipeline.tracking import BetweenLooks, FaceStage, Processed
from streamer.sources.base import Source
from streamer.track.tracker import TrackerRule
from streamer.types import Detections, Frame

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0  # how long a stopped stream may take to send its held frames and end its tracks


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
        sync_max_hold_s: float = 0.0,
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
        self.sync_max_hold_s = sync_max_hold_s  # sync_output (0: off): the longest hold
        self._pacer = Pacer(self._publish, sync_max_hold_s) if sync_max_hold_s > 0 else None
        self._waiting: tuple[Frame, float] | None = None  # held, at the detector (and when it came)
        self._held: list[tuple[Frame, float]] = []  # held behind it
        self._answered = False  # the detector answered for the frame waiting
        self._expiring = False  # ... or its hold is being let go without the answer
        self._releasing = False  # the held frames are being tracked and sent out

    def on_detections(self, d: Detections) -> None:
        if self.detections is None or d.frame_index >= self.detections.frame_index:
            self.detections = d
            self.stage.on_detections(d)
        w = self._waiting
        if w is not None and d.frame_index >= w[0].index and not self._answered:
            self._answered = True
            self._later(self._answer(w[0].index))
        elif self._last is not None:
            # the detector is free now: send it the frame shown last rather than wait for the next
            # one (up to a frame interval of idle detector per round, and its answer that much later)
            self._later(self._detect_last())

    def _later(self, c: Awaitable[None]) -> None:
        t = asyncio.ensure_future(c)
        self._late.add(t)
        t.add_done_callback(self._late.discard)

    def _behind(self, frame: Frame, came: float) -> bool:
        """sync: hold ``frame`` behind the one at the detector, or behind those being released."""
        if self._waiting is None and not self._releasing:
            return False
        held = self._held
        if self._releasing and held and came - held[0][1] > self.sync_max_hold_s:
            # the stage is a hold behind: wait for it (the source drops frames meanwhile, newest
            # wins, as without sync_output) rather than queue more
            return False
        held.append((frame, came))
        if self._releasing:
            return True
        assert self._waiting is not None
        # let them go without the answer if the detector dropped the frame (an error, no
        # backend) or the hold is past its cap (an answer's release is on its way)
        late = came - self._waiting[1] > self.sync_max_hold_s
        if not self._answered and not self._expiring and (late or not self.batcher.busy(self.id)):
            self._expiring = True
            self._later(self._answer(self._waiting[0].index))
        return True

    async def _answer(self, index: int) -> None:
        try:
            async with self._stage_lock:
                w = self._waiting
                if w is not None and w[0].index == index:
                    await self._release(self._answered)
        except Exception:
            log.exception("stream %s: releasing its held frames failed", self.id)
            self.metrics.errors.labels("stream").inc()

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
        if self._pacer is not None:
            self._pacer.start()
        try:
            async for frame in self.source.frames():
                m.frames_in.labels(self.id).inc()
                came = time.monotonic()
                if self._behind(frame, came):  # (without waiting for the stage: no source overrun)
                    continue
                async with self._stage_lock:
                    if self._behind(frame, came):  # (a release took the lock first)
                        continue
                    self._count_skipped()
                    # its last frame still at the detector: this one is shown with the tracked boxes
                    # and not planned for (a plan the detector never ran would mislead the planner
                    # about what it looked at); it may still go there if it is the last one shown
                    # when the detector answers
                    busy = self.batcher.busy(self.id)
                    due = False if busy else self.stage.due(frame.index)
                    if due and self._pacer is not None:
                        await self._hold(frame, came)
                        continue
                    draw = self.hub.watched
                    out = await self._render(self.stage.process, frame, draw, due)
                    if due:  # the plan is made on this frame's tracks and motion
                        self.batcher.submit(frame, self.on_detections, self.stage.skip_boxes(), out.regions)
                    if self._pacer is None:
                        self._last, self._last_skipped = frame, busy
                    elif busy:  # (sync: the frame shown last is not sent late, its answer would be)
                        m.frames_dropped.labels(self.id, DROP_DETECT_SKIPPED).inc()
                if self._pacer is None:
                    await self._publish((frame, out, draw))
                else:
                    self._pacer.put((frame, out, draw), came)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream %s failed", self.id)
            m.errors.labels("stream").inc()
        finally:
            self._count_skipped()
            self._last = None
            self.batcher.forget(self.id)
            cancelled = False
            try:
                await self._wind_down()
            except asyncio.CancelledError:  # the tracks still end and are written
                cancelled = True
            try:
                self.events.publish(self.stage.close(time.time()))
            except Exception:
                log.exception("stream %s: ending its tracks failed", self.id)
            self.events.close()
            await self.hub.close()
            if cancelled:
                raise asyncio.CancelledError

    async def _wind_down(self) -> None:
        """The stream ends: the stage's work in flight finishes, the held frames go out."""
        busy = self._processing
        if busy is not None and not busy.done():  # the stage is not thread-safe: let it finish
            await asyncio.gather(asyncio.wrap_future(busy), return_exceptions=True)
        if self._late:  # a late plan may be in the render pool
            await asyncio.gather(*self._late, return_exceptions=True)
        await self._flush()

    def _render(self, fn: Callable[..., Processed], *args: object) -> Awaitable[Processed]:
        """``fn(*args)`` (a stage call: not thread-safe) in the render pool."""
        self._processing = self.render_pool.submit(fn, *args)
        return asyncio.wrap_future(self._processing)

    async def _publish(self, item: tuple[Frame, Processed, bool]) -> None:
        frame, out, draw = item
        m = self.metrics
        self.events.publish(out.events)
        dets = self.detections
        if dets is not None:
            m.detection_age.labels(self.id).set(max(0.0, frame.captured_at - dets.captured_at))
            dets = Detections(self.id, frame.index, frame.captured_at, out.faces)
        await self.hub.publish(AnnotatedFrame(frame, out.image, dets, self.hub.next_seq(), draw))
        m.frames_out.labels(self.id).inc()

    async def _hold(self, frame: Frame, came: float) -> None:
        """Under the stage lock: track to ``frame``, plan on it, send it to the detector, hold it."""
        regions = await self._render(self.stage.prepare, frame, True)
        self._waiting, self._answered, self._expiring = (frame, came), False, False
        self.batcher.submit(frame, self.on_detections, self.stage.skip_boxes(), regions)

    async def _release(self, answered: bool, again: bool = True) -> None:
        """Under the stage lock: the frame held at the detector, with its answer if it came, and
        the frames held behind it go out in order; the newest of them, if the detector answered
        and it is due, is sent there and held in turn."""
        assert self._waiting is not None and self._pacer is not None
        (first, since), held, m = self._waiting, self._held, self.metrics
        self._waiting, self._releasing = None, True
        try:
            hold = time.monotonic() - since
            self._pacer.delay = min(hold, self.sync_max_hold_s)
            m.output_delay.labels(self.id).set(hold)
            draw = self.hub.watched
            pacer = self._pacer
            pacer.put((first, await self._render(self.stage.finish, first, draw), draw), since)
            if not answered:
                m.sync_released.labels(self.id).inc()
            while held:  # (frames that come meanwhile join it)
                frame, came = held.pop(0)
                free = again and answered and not self.batcher.busy(self.id)
                if not held and free and self.stage.due(frame.index):
                    await self._hold(frame, came)
                    return
                m.frames_dropped.labels(self.id, DROP_DETECT_SKIPPED).inc()
                if not answered:
                    m.sync_released.labels(self.id).inc()
                pacer.put((frame, await self._render(self.stage.process, frame, draw, False), draw), came)
        finally:
            self._releasing = False

    async def _flush(self) -> None:
        """The stream ends: the held frames go out (with the answer if it came), then the pacer's."""
        if self._pacer is None:
            return
        try:
            async with self._stage_lock:
                if self._waiting is not None:
                    await self._release(self._answered, again=False)
        except Exception:
            log.exception("stream %s: its held frames failed", self.id)
        await self._pacer.close()

    async def stop(self) -> None:
        """Close the source; the stream's loop then ends by itself, sends its held frames and ends
        its tracks. A loop still running after ``STOP_WAIT_S`` is cancelled."""
        await self.source.close()
        if self.task is not None:
            done, _ = await asyncio.wait({self.task}, timeout=STOP_WAIT_S)
            if not done:
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
