"""A stream's annotated frames as an outgoing WebRTC video track."""

from __future__ import annotations

import fractions
import time

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from streamer.outputs.hub import FrameHub

CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK)


class AnnotatedTrack(MediaStreamTrack):
    """Sends the newest annotated frame of a hub; skipped frames are counted by the hub."""

    kind = "video"

    def __init__(self, hub: FrameHub) -> None:
        super().__init__()
        self.hub = hub
        self.sub = hub.subscribe()
        self._t0: float | None = None
        self._last_pts = -1

    def stop(self) -> None:
        self.sub.close()
        super().stop()

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self.sub.next()
        if item is None:
            self.stop()
            raise MediaStreamError
        t0 = time.perf_counter()
        frame = VideoFrame.from_ndarray(item.image, format="rgb24")
        # Timestamps from capture time, so the receiver's playout follows the source's pacing.
        if self._t0 is None:
            self._t0 = item.frame.captured_at
        pts = int((item.frame.captured_at - self._t0) * CLOCK)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = TIME_BASE
        self.hub.metrics.stage_seconds.labels("encode").observe(time.perf_counter() - t0)
        self.sub.sent(item)
        return frame
