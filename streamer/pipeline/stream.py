"""One live stream: source -> detection batcher (newest frame) -> overlay -> hub.

The display path never waits for the model path: every frame is drawn with the
newest detections this stream has, so output FPS follows input FPS even when
detection is slower. How old those detections are is a metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from streamer.metrics import Metrics
from streamer.outputs.hub import AnnotatedFrame, FrameHub
from streamer.overlay import draw_faces
from streamer.pipeline.batcher import DetectionBatcher
from streamer.sources.base import Source
from streamer.types import Detections

log = logging.getLogger(__name__)


class Stream:
    def __init__(
        self, source: Source, batcher: DetectionBatcher, metrics: Metrics, render_pool: Executor
    ) -> None:
        self.id = source.id
        self.source = source
        self.batcher = batcher
        self.metrics = metrics
        self.render_pool = render_pool
        self.hub = FrameHub(self.id, metrics)
        self.detections: Detections | None = None
        self.task: asyncio.Task[None] | None = None
        self.started_at = time.time()

    def on_detections(self, d: Detections) -> None:
        if self.detections is None or d.frame_index >= self.detections.frame_index:
            self.detections = d

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
        loop = asyncio.get_running_loop()
        m = self.metrics
        try:
            async for frame in self.source.frames():
                m.frames_in.labels(self.id).inc()
                self.batcher.submit(frame, self.on_detections)
                dets = self.detections
                t0 = time.perf_counter()
                image = await loop.run_in_executor(
                    self.render_pool, draw_faces, frame.image, dets.faces if dets else ()
                )
                m.stage_seconds.labels("overlay").observe(time.perf_counter() - t0)
                if dets is not None:
                    m.detection_age.labels(self.id).set(max(0.0, frame.captured_at - dets.captured_at))
                await self.hub.publish(AnnotatedFrame(frame, image, dets, self.hub.next_seq()))
                m.frames_out.labels(self.id).inc()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream %s failed", self.id)
            m.errors.labels("stream").inc()
        finally:
            self.batcher.forget(self.id)
            await self.hub.close()

    async def stop(self) -> None:
        await self.source.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def info(self) -> dict[str, object]:
        st = self.source.state
        d = self.detections
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
            "faces": [f.as_dict() for f in d.faces] if d else [],
            "detection_age_s": round(time.time() - d.captured_at, 3) if d else None,
            "detections_stale": not self.batcher.backend_up,
        }
