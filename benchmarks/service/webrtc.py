"""Service part ``webrtc``: end-to-end latency through WebRTC, a real aiortc sender and receiver on
loopback.

The client sends the clip at its native frame rate to ``/offer``, each frame stamped
with its number as a 16-bit code (12 bits of number, 4 of check) in black and white
blocks in the bottom-right corner, away from the faces. It decodes the code from
each annotated frame it gets back: latency = receive time - send time of that frame.
In the same run an MJPEG client watches the same stream, giving capture (arrival at
the service) to send. Sender, receiver and service share this machine's CPU.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from aiohttp import ClientSession
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from av import VideoFrame

from benchmarks.clips.video import read_frames, video_fps
from benchmarks.report import percentiles, progress
from benchmarks.service import harness
from benchmarks.service.options import Options, classifier_configs

BLOCK, BITS, MARGIN = 16, 16, 4


def _code(n: int) -> int:
    n &= 0xFFF
    return (n << 4) | ((n ^ (n >> 4) ^ (n >> 8)) & 0xF)


def stamp(image: np.ndarray, n: int) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    y0, x0 = h - BLOCK - MARGIN, w - BITS * BLOCK - MARGIN
    c = _code(n)
    for i in range(BITS):
        v = 255 if (c >> (BITS - 1 - i)) & 1 else 0
        out[y0 : y0 + BLOCK, x0 + i * BLOCK : x0 + (i + 1) * BLOCK] = v
    return out


def read_stamp(image: np.ndarray) -> int | None:
    """The frame number stamped in ``image``, or None when the code does not check."""
    h, w = image.shape[:2]
    y0, x0 = h - BLOCK - MARGIN, w - BITS * BLOCK - MARGIN
    q = BLOCK // 4
    c = 0
    for i in range(BITS):
        cell = image[y0 + q : y0 + BLOCK - q, x0 + i * BLOCK + q : x0 + (i + 1) * BLOCK - q]
        c = (c << 1) | int(cell.mean() > 127)
    n = c >> 4
    return n if _code(n) == c else None


class StampedTrack(VideoStreamTrack):
    """The clip at ``fps``, looping, each frame stamped; remembers when each number was sent."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        super().__init__()
        self.frames, self.fps = frames, fps
        self.sent: dict[int, float] = {}
        self.n = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.time()
        due = self._start + self.n / self.fps
        await asyncio.sleep(max(0.0, due - time.time()))
        n = self.n
        frame = VideoFrame.from_ndarray(stamp(self.frames[n % len(self.frames)], n), format="rgb24")
        frame.pts, frame.time_base = int(n * 90000 / self.fps), __import__("fractions").Fraction(1, 90000)
        self.sent[n & 0xFFF] = time.time()
        self.n += 1
        return frame


async def _run(opts: Options) -> dict[str, Any]:
    fps = video_fps(opts.video)
    frames = read_frames(opts.video, 90, start=150)
    seconds = opts.seconds
    async with harness.Service(
        opts.detector, opts.max_batch, opts.workers, classifier_configs(opts), opts.worker_nice
    ) as svc:
        pc = RTCPeerConnection()
        track = StampedTrack(frames, fps)
        pc.addTrack(track)
        got: list[tuple[float, int | None]] = []
        readers: list[asyncio.Task[None]] = []

        @pc.on("track")
        def on_track(remote) -> None:
            async def read() -> None:
                while True:
                    f = await remote.recv()
                    t = time.time()
                    got.append((t, read_stamp(f.to_ndarray(format="rgb24"))))

            readers.append(asyncio.ensure_future(read()))

        try:
            await pc.setLocalDescription(await pc.createOffer())
            async with ClientSession() as s:
                r = await s.post(
                    f"http://127.0.0.1:{svc.port}/offer",
                    json={"sdp": pc.localDescription.sdp, "type": "offer"},
                )
                answer = await r.json()
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            sid = answer["stream"]
            svc.samples[sid] = []
            url = f"http://127.0.0.1:{svc.port}/streams/{sid}/mjpeg"
            svc._watchers.append(asyncio.create_task(harness._watch_mjpeg(url, svc.samples[sid])))
            progress("webrtc: waiting for the first detections ...")
            await svc.wait_detections()
            await asyncio.sleep(opts.warmup)
            i0, w0 = len(got), time.time()
            sent0 = track.n
            server = await svc.measure(seconds, "webrtc")
            w1, sent1 = time.time(), track.n
            window = [(t, n) for t, n in got[i0:] if t <= w1]
        finally:
            await pc.close()
            for t in readers:
                t.cancel()
    dt = w1 - w0
    lat = [t - track.sent[n] for t, n in window if n is not None and n in track.sent]
    decoded = sum(1 for _, n in window if n is not None)
    return {
        "detector": opts.detector,
        "seconds": round(dt, 2),
        "sent_fps": round((sent1 - sent0) / dt, 2),
        "received_fps": round(len(window) / dt, 2),
        "decoded_share": round(decoded / len(window), 4) if window else 0.0,
        "drop_rate": round(max(0.0, 1 - len(window) / max(1, sent1 - sent0)), 4),
        "e2e_latency_s": percentiles(lat),
        "e2e_latency_samples": [round(x, 4) for x in lat],
        "service_capture_to_receive_s": server["latency_s"],
        "service_detections_per_s": server["detections_per_s"],
        "frames_measured": len(lat),
    }


def run(opts: Options) -> dict[str, Any]:
    return asyncio.run(_run(opts))
