"""MJPEG over HTTP (multipart/x-mixed-replace): the simple way to watch a stream.

Each part carries ``X-Capture-Time`` (Unix time the frame was captured) and
``X-Frame-Index``, so a client can measure capture-to-receive latency.
"""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
from aiohttp import web

from streamer.outputs.hub import FrameHub

BOUNDARY = "streamerframe"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


async def serve_mjpeg(
    request: web.Request, hub: FrameHub, quality: int, max_fps: float, executor=None
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store",
        }
    )
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    metrics = hub.metrics
    sub = hub.subscribe()
    min_gap = 1.0 / max_fps
    last = 0.0
    try:
        while True:
            item = await sub.next()
            if item is None:
                break
            wait = last + min_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # take the newest frame after the pause
            last = time.monotonic()
            t0 = time.perf_counter()
            jpeg = await loop.run_in_executor(executor, encode_jpeg, item.image, quality)
            metrics.stage_seconds.labels("encode").observe(time.perf_counter() - t0)
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                f"X-Capture-Time: {item.frame.captured_at:.6f}\r\nX-Frame-Index: {item.frame.index}\r\n\r\n"
            )
            await resp.write(head.encode() + jpeg + b"\r\n")
            sub.sent(item)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp
