"""OpenCV-backed sources: video files, local cameras, RTSP and HTTP (MJPEG) cameras.

A daemon thread decodes (OpenCV releases the GIL while decoding) and hands the
newest frame to the event loop; an older unread frame is replaced and counted
as a ``source_overrun`` drop. On failure (cannot open, stream ended, read timed
out) the thread retries with exponential backoff and jitter, forever, until the
source is closed. Files may loop and may be paced at their own frame rate.

Opening: OpenCV's FFmpeg backend opens one capture at a time, process-wide, unless told FFmpeg is
thread-safe (it is, since FFmpeg 4): with that lock a camera stalling in its open held up every
other source for ``open_timeout_s``, so it is switched off here. Network cameras are probed first
(``probe.py``), in a wait that removing the source cancels. Frame sizes are checked before
anything is decoded: the size the stream declares at open, and for MJPEG every frame's JPEG header
(OpenCV hands over the undecoded packet and the frame is decoded here only when within bounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable

# before OpenCV's first capture: no process-wide open lock (see above). The capture options are
# set once now and later only replaced, never added: another thread may read them meanwhile.
# FFmpeg follows no HTTP redirect: a camera that passed the pre-check cannot send it elsewhere.
os.environ.setdefault("OPENCV_FFMPEG_IS_THREAD_SAFE", "1")
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|max_redirects;0")
# FFmpeg's own log lines ("[mov,mp4,... @ 0x...] moov atom not found" at every retry of a broken
# file, "[h264 @ ...] error while decoding MB" on a damaged stream) are library noise in the
# service's log: each source says what failed, and damaged frames are counted (AV_LOG_QUIET)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np

from streamer.config import SourceConfig, SourcesDefaults
from streamer.jpeg import BadJpeg, TooLarge, check_jpeg
from streamer.metrics import DROP_CORRUPT, DROP_SOURCE_OVERRUN, DROP_TOO_LARGE, Metrics
from streamer.pipeline.slot import LatestSlot
from streamer.sources.base import SourceState, redact_text, redact_url
from streamer.sources.probe import ProbeCancelled, probe
from streamer.types import Frame

# OpenCV's own warnings (the thread-safety notice above at every open, "can't be used to capture by
# name") are library noise in the service's log: each failure is reported by the source itself.
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

log = logging.getLogger(__name__)
_EMPTY = np.zeros((0, 0, 3), np.uint8)
# threads of removed sources still inside OpenCV's open (see CaptureSource.close)
_abandoned_opens = 0
_abandoned_lock = threading.Lock()
NETWORK_KINDS = ("rtsp", "rtsps", "http", "https")


def frame_rate(cap: cv2.VideoCapture) -> float:
    """The capture's frame rate, or 30 where the container does not say (or says nonsense)."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    return fps if 1.0 <= fps <= 240.0 else 30.0


def backoff_wait(delay: float, max_s: float, rng: random.Random | None = None) -> float:
    """The pause before the next attempt: ``delay`` with +-20% jitter, never above ``max_s``."""
    return min(max_s, delay * (rng or random).uniform(0.8, 1.2))


class CaptureSource:
    def __init__(self, cfg: SourceConfig, defaults: SourcesDefaults, metrics: Metrics) -> None:
        self.id = cfg.id
        self.kind = cfg.kind
        self.cfg = cfg
        self.defaults = defaults
        self.metrics = metrics
        self.state = SourceState()
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._index = 0
        self._finished = False
        self._in_open = False
        self._abandoned = False
        self._open_note: str | None = None  # what the probe saw, for OpenCV's unexplained failures
        self.on_state: Callable[[SourceState], None] | None = None

    def describe(self) -> str:
        if self.cfg.url is not None:
            return redact_url(self.cfg.url)
        if self.cfg.device is not None:
            return f"camera {self.cfg.device}"
        return os.path.basename(self.cfg.file or "")

    # --- event-loop side -------------------------------------------------
    async def frames(self) -> AsyncIterator[Frame]:
        self._start()
        while True:
            frame = await self._slot.get()
            if frame is None:
                return
            yield frame

    def _start(self) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name=f"source-{self.id}", daemon=True)
            self._thread.start()

    async def close(self) -> None:
        self._stop.set()
        self._slot.close()
        t = self._thread
        if t is None or not t.is_alive() or self._abandon():
            return
        # a thread inside OpenCV's open, past max_abandoned_opens, is waited for to the end
        wait = self.defaults.open_timeout_s + 1.0 if self._in_open else 5.0
        await asyncio.get_running_loop().run_in_executor(None, t.join, wait)

    def _abandon(self) -> bool:
        """Leave a thread stuck in OpenCV's open (uncancellable) to end by itself within
        open_timeout_s (stopped, it delivers nothing), while at most max_abandoned_opens are."""
        global _abandoned_opens
        with _abandoned_lock:
            if not self._in_open or _abandoned_opens >= self.defaults.max_abandoned_opens:
                return False
            _abandoned_opens += 1
            self._abandoned = True
            return True

    def _deliver(self, frame: Frame) -> None:
        if self._slot.closed:
            return
        if self._slot.put(frame) is not None:
            self.metrics.frames_dropped.labels(self.id, DROP_SOURCE_OVERRUN).inc()

    def _set_state(self, up: bool, error: str | None = None) -> None:
        changed = up != self.state.up or error != self.state.error
        self.state.up = up
        self.state.error = error
        self.metrics.stream_up.labels(self.id).set(1 if up else 0)
        if changed and self.on_state is not None:
            self.on_state(self.state)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._stop.is_set():
            return
        with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
            loop.call_soon_threadsafe(fn, *args)

    # --- decoder thread --------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        global _abandoned_opens
        d = self.defaults
        if self.cfg.device is not None:
            return cv2.VideoCapture(self.cfg.device)
        target = self.cfg.file if self.cfg.file is not None else self.cfg.url
        if self.cfg.file is not None and not os.path.isfile(target or ""):
            raise OSError(f"no such file: {os.path.basename(target or '')}")
        if self.cfg.url is not None and self.kind in NETWORK_KINDS:
            # outside OpenCV's process-wide open lock: a silent camera holds up no other source
            self._open_note = probe(self.cfg.url, d.open_timeout_s, d.max_frame_side, self._stop)
        if self.kind in ("rtsp", "rtsps"):
            # OpenCV reads FFmpeg's options from the environment when it opens a capture. The
            # transport is one setting for all cameras, so every source writes the same value.
            want = f"rtsp_transport;{d.rtsp_transport}|max_redirects;0"
            if os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS") != want:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = want
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(d.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(d.read_timeout_s * 1000),
        ]
        with _abandoned_lock:
            self._in_open = True  # a stalled open cannot be cancelled: it ends at open_timeout_s
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        finally:
            with _abandoned_lock:
                self._in_open = False
                if self._abandoned:
                    _abandoned_opens -= 1
                    self._abandoned = False

    def _run(self) -> None:
        delay = self.defaults.reconnect_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.state.reconnects += 1
                self._call(self.metrics.source_reconnects.labels(self.id).inc)
            first = False
            try:
                delivered = self._capture_once()
            except ProbeCancelled:
                break  # removed while its camera was being probed
            except Exception as e:
                delivered = 0
                msg = redact_text(str(e)) or type(e).__name__
                log.warning("source %s (%s): %s", self.id, self.describe(), msg)
                self._call(self._set_state, False, msg)
                self._call(self.metrics.errors.labels("source").inc)
            if self._finished:
                break
            if delivered:
                delay = self.defaults.reconnect_initial_s  # it worked for a while: start over
            wait = backoff_wait(delay, self.defaults.reconnect_max_s)
            delay = min(delay * 2, self.defaults.reconnect_max_s)
            self._stop.wait(wait)
        self._call(self._set_state, False, self.state.error)
        if self._finished:
            self._call(self._slot.close)

    def _capture_once(self) -> int:
        """Open, read until failure or stop; return the number of frames delivered."""
        cap = self._open()
        try:
            if not cap.isOpened():
                why = self._open_note or "OpenCV/FFmpeg could not open it (no readable video)"
                raise OSError(f"cannot open {self.describe()}: {why}")
            fps = self.state.fps = frame_rate(cap)
            side = self.defaults.max_frame_side
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if max(w, h) > side:  # declared by the stream; nothing decoded yet
                self._call(self.metrics.frames_dropped.labels(self.id, DROP_TOO_LARGE).inc)
                raise OSError(f"frames of {w}x{h} exceed max_frame_side {side}")
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").lower()
            # MJPEG: each packet is a JPEG whose header says its size; take it undecoded (raw mode)
            raw = self.kind in NETWORK_KINDS and fourcc == b"mjpg" and cap.set(cv2.CAP_PROP_FORMAT, -1)
            period = 1.0 / fps if (self.kind == "file" and self.cfg.realtime) else 0.0
            delivered = 0
            next_at = time.monotonic()
            bad = 0
            while not self._stop.is_set():
                t0 = time.perf_counter()
                ok, bgr = cap.read()
                if raw and ok and bgr is not None:
                    try:
                        bgr = self._decode_jpeg(bgr)
                    except TooLarge as e:  # its header says so: not decoded
                        bad += 1
                        self._call(self.metrics.frames_dropped.labels(self.id, DROP_TOO_LARGE).inc)
                        if bad > 30:
                            raise OSError(str(e)) from None
                        continue
                if not ok or bgr is None:
                    if self.kind == "file" and delivered and self.cfg.loop:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        ok, bgr = cap.read()
                        if not ok or bgr is None:  # a raw stream (.h264) seeks nowhere: open it again
                            cap.release()
                            cap = self._open()
                            ok, bgr = cap.read()
                    if not ok or bgr is None:
                        if self.kind == "file" and delivered and not self.cfg.loop:
                            self._finished = True
                            return delivered
                        raise OSError("stream ended or read timed out" if delivered else "no frames")
                if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
                    bad += 1
                    self._call(self.metrics.frames_dropped.labels(self.id, DROP_CORRUPT).inc)
                    if bad > 100:
                        raise OSError(f"undecodable frames ({bgr.shape})")
                    continue
                if max(bgr.shape[:2]) > self.defaults.max_frame_side:
                    bad += 1
                    self._call(self.metrics.frames_dropped.labels(self.id, DROP_TOO_LARGE).inc)
                    if bad > 30:
                        h, w = bgr.shape[:2]
                        raise OSError(
                            f"frames of {w}x{h} exceed max_frame_side {self.defaults.max_frame_side}"
                        )
                    continue
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                decode_s = time.perf_counter() - t0
                now = time.time()
                if delivered == 0:
                    self.state.height, self.state.width = rgb.shape[:2]
                    self._call(self._set_state, True, None)
                frame = Frame(self.id, self._index, rgb, now)
                self._index += 1
                delivered += 1
                self.state.frames += 1
                self._call(self.metrics.stage_seconds.labels("decode").observe, decode_s)
                self._call(self._deliver, frame)
                if period:
                    next_at += period
                    lag = next_at - time.monotonic()
                    if lag > 0:
                        self._stop.wait(lag)
                    elif lag < -1.0:  # fell far behind (machine busy): do not burst to catch up
                        next_at = time.monotonic()
            return delivered
        finally:
            cap.release()

    def _decode_jpeg(self, packet: np.ndarray) -> np.ndarray:
        """An MJPEG packet decoded to BGR; TooLarge (from its header alone) over max_frame_side.

        An undecodable packet comes back as an empty image, counted as corrupt below."""
        data = packet.reshape(-1)
        try:
            check_jpeg(data, self.defaults.max_frame_side)
        except TooLarge:
            raise
        except BadJpeg:
            return _EMPTY
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        return _EMPTY if bgr is None else bgr
