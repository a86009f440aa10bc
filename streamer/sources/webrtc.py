"""A browser's camera over WebRTC as a source.

aiortc queues every decoded frame without bound; a reader task drains that
queue at once and keeps only the newest frame (older ones counted as
``source_overrun``), so a slow pipeline never builds latency. A camera that
sends nothing for ``timeout_s`` (tab killed, network gone) ends the source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streamer.metrics import DROP_SOURCE_OVERRUN, DROP_TOO_LARGE, Metrics
from streamer.pipeline.slot import LatestSlot
from streamer.sources.base import SourceState
from streamer.types import Frame

log = logging.getLogger(__name__)


def _to_rgb(video_frame) -> np.ndarray:
    return video_frame.to_ndarray(format="rgb24")


class WebRTCSource:
    kind = "webrtc"

    def __init__(
        self,
        stream_id: str,
        track: MediaStreamTrack,
        metrics: Metrics,
        executor: Executor,
        timeout_s: float = 10.0,
        max_frame_side: int = 4096,
    ) -> None:
        self.id = stream_id
        self.track = track
        self.metrics = metrics
        self.executor = executor
        self.timeout_s = timeout_s
        self.max_frame_side = max_frame_side
        self.state = SourceState()
        self._slot: LatestSlot[tuple[object, float]] = LatestSlot()
        self._reader: asyncio.Task[None] | None = None
        self._index = 0

    def describe(self) -> str:
        return "browser camera (WebRTC)"

    async def _read(self) -> None:
        try:
            while True:
                vf = await asyncio.wait_for(self.track.recv(), self.timeout_s)
                if max(vf.width, vf.height) > self.max_frame_side:
                    self.metrics.frames_dropped.labels(self.id, DROP_TOO_LARGE).inc()
                    self.state.error = f"frame {vf.width}x{vf.height} exceeds {self.max_frame_side}px"
                    continue
                if self._slot.put((vf, time.time())) is not None:
                    self.metrics.frames_dropped.labels(self.id, DROP_SOURCE_OVERRUN).inc()
        except TimeoutError:
            log.info("stream %s: no frame for %.0fs; closing", self.id, self.timeout_s)
            self.state.error = f"no video for {self.timeout_s:.0f}s"
            self.metrics.errors.labels("peer_timeout").inc()
        except MediaStreamError:
            pass
        finally:
            self.state.up = False
            self.metrics.stream_up.labels(self.id).set(0)
            self._slot.close()

    async def frames(self) -> AsyncIterator[Frame]:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"webrtc-reader-{self.id}")
        loop = asyncio.get_running_loop()
        while True:
            item = await self._slot.get()
            if item is None:
                return
            vf, received_at = item
            t0 = time.perf_counter()
            try:
                rgb = await loop.run_in_executor(self.executor, _to_rgb, vf)
            except Exception as e:
                log.warning("stream %s: undecodable frame: %s", self.id, e)
                self.metrics.errors.labels("bad_frame").inc()
                continue
            self.metrics.stage_seconds.labels("decode").observe(time.perf_counter() - t0)
            if not self.state.up:
                self.state.up = True
                self.state.height, self.state.width = rgb.shape[:2]
                self.metrics.stream_up.labels(self.id).set(1)
            self.state.frames += 1
            self._index += 1
            yield Frame(
                self.id,
                self._index,
                rgb,
                received_at,
                getattr(vf, "pts", None),
                getattr(vf, "time_base", None),
            )

    async def close(self) -> None:
        self._slot.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
