"""MJPEG over HTTP (multipart/x-mixed-replace): the simple way to watch a stream.

Each part carries ``X-Capture-Time`` (Unix time the frame was captured) and
``X-Frame-Index``, so a client can measure capture-to-receive latency.

Each frame is encoded once, whatever the number of viewers: viewers of a stream share the
bytes. Viewers are capped (``max_viewers``, a 429 beyond), and a viewer whose socket has not
drained within ``write_timeout_s`` is dropped and counted: a client that never reads holds no
render thread and no more than one socket buffer, for a bounded time. A client that goes away
is a normal departure, counted, never an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from concurrent.futures import Executor

import cv2
import numpy as np
from aiohttp import web

from streamer.metrics import Metrics
from streamer.outputs.hub import AnnotatedFrame, FrameHub

log = logging.getLogger(__name__)
BOUNDARY = "streamerframe"
OUTPUT = "mjpeg"


class TooManyViewers(RuntimeError):
    pass


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def part(item: AnnotatedFrame, jpeg: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Capture-Time: {item.frame.captured_at:.6f}\r\nX-Frame-Index: {item.frame.index}\r\n\r\n"
    )
    return head.encode() + jpeg + b"\r\n"


class SharedParts:
    """The newest frame of one hub as a ready multipart part, encoded once for all its viewers."""

    def __init__(self) -> None:
        self.seq = -1
        self.future: asyncio.Future[bytes] | None = None


class MjpegOutput:
    def __init__(
        self,
        metrics: Metrics,
        quality: int,
        max_fps: float,
        max_viewers: int,
        write_timeout_s: float,
        executor: Executor | None = None,
    ) -> None:
        self.metrics = metrics
        self.quality = quality
        self.max_fps = max_fps
        self.max_viewers = max_viewers
        self.write_timeout_s = write_timeout_s
        self.executor = executor
        self.viewers = 0
        self.encodes = 0
        self._shared: weakref.WeakKeyDictionary[FrameHub, SharedParts] = weakref.WeakKeyDictionary()

    async def _encoded(self, hub: FrameHub, item: AnnotatedFrame) -> bytes:
        shared = self._shared.setdefault(hub, SharedParts())
        if shared.seq != item.seq or shared.future is None:
            shared.seq = item.seq
            shared.future = asyncio.ensure_future(self._encode(item))
        return await asyncio.shield(shared.future)

    async def _encode(self, item: AnnotatedFrame) -> bytes:
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        jpeg = await loop.run_in_executor(self.executor, encode_jpeg, item.image, self.quality)
        self.encodes += 1
        self.metrics.stage_seconds.labels("encode").observe(time.perf_counter() - t0)
        return part(item, jpeg)

    def admit(self) -> None:
        if self.viewers >= self.max_viewers:
            raise TooManyViewers(f"too many MJPEG viewers (limit {self.max_viewers})")

    async def serve(self, request: web.Request, hub: FrameHub) -> web.StreamResponse:
        self.admit()
        self.viewers += 1
        self.metrics.mjpeg_viewers.set(self.viewers)
        try:
            return await self._serve(request, hub)
        finally:
            self.viewers -= 1
            self.metrics.mjpeg_viewers.set(self.viewers)

    async def _serve(self, request: web.Request, hub: FrameHub) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        sub = hub.subscribe()
        min_gap = 1.0 / self.max_fps
        last = 0.0
        try:
            await resp.prepare(request)
            while True:
                item = await sub.next()
                if item is None:
                    break
                wait = last + min_gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # take the newest frame after the pause
                last = time.monotonic()
                data = await self._encoded(hub, item)
                try:
                    await asyncio.wait_for(resp.write(data), self.write_timeout_s)
                except TimeoutError:
                    self.metrics.output_disconnects.labels(OUTPUT, "stalled").inc()
                    log.info(
                        "MJPEG viewer of %s: socket not drained in %gs; dropped",
                        hub.stream,
                        self.write_timeout_s,
                    )
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                sub.sent(item)
            await resp.write_eof()
        except ConnectionError:
            self.metrics.output_disconnects.labels(OUTPUT, "left").inc()
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the connection is lost (a reset with a full buffer)
            if request.transport is None or request.transport.is_closing():
                self.metrics.output_disconnects.labels(OUTPUT, "left").inc()
            raise
        finally:
            sub.close()
        return resp
