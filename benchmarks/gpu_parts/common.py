"""What the gpu scenario's parts share: its options, the demo frames, timing under a budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import (
    output_args,
    parser,
    progress,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "streamer" / "assets" / "demo.mp4"
PARTS = ("detector", "backbone", "streams")
SHARES = {"detector": 0.25, "backbone": 0.15, "streams": 0.6}  # of --budget-s; unused time rolls over
FPS = 30.0
STREAM_SIZE = (640, 480)
# modules that must not load on the GPU machine's path (they are not installed there)
ABSENT = ("tensorflow", "face_recognition_models", "aiortc", "av")


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse(argv: Sequence[str] | None) -> Any:
    ap = parser("gpu", __doc__)
    ap.add_argument("--quick", action="store_true", help="one size, few calls, 1-2 streams (a dry run)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="detector frame sizes WxH")
    ap.add_argument("--batches", default="1,8,16", help="detector frames per call")
    ap.add_argument("--face-batches", default="1,32,128", help="backbone and heads: faces per call")
    ap.add_argument("--row-seconds", type=float, default=2.0, help="timed seconds per table row")
    ap.add_argument("--max-batch", type=int, default=16, help="streams: pipeline.max_batch")
    ap.add_argument("--max-wait-ms", type=float, default=10.0, help="streams: pipeline.max_wait_ms")
    ap.add_argument("--workers", type=int, default=1, help="streams: inference worker processes")
    ap.add_argument("--stream-counts", default=None, help="streams: exactly these levels (e.g. 1,8,16)")
    ap.add_argument("--max-streams", type=int, default=128, help="streams: stop doubling here")
    ap.add_argument("--refine", type=int, default=3, help="streams: bisection levels after doubling")
    ap.add_argument("--seconds", type=float, default=5.0, help="streams: measuring window per level")
    ap.add_argument("--warmup", type=float, default=2.0, help="streams: settle time per level")
    ap.add_argument("--latency-limit", type=float, default=0.1, help="streams: p95 (s) that keeps up")
    ap.add_argument("--budget-s", type=float, default=300.0, help="stop starting new work after this")
    output_args(ap, "gpu")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.face_batches = "640x480", "1,2", "1,4"
        args.row_seconds, args.seconds, args.warmup = 0.3, 2.0, 1.0
        args.max_batch, args.max_streams, args.refine = 2, 2, 0
        args.stream_counts = args.stream_counts or "1,2"
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.sizes = [_size(s) for s in args.sizes.split(",")]
    args.batches = _ints(args.batches)
    args.face_batches = _ints(args.face_batches)
    args.stream_counts = _ints(args.stream_counts) if args.stream_counts else ()
    return args


# ---------------------------------------------------------------------------- frames


def demo_frames(n: int = 9) -> list[np.ndarray]:
    """``n`` RGB frames from across the demo clip, at its own size."""
    import cv2

    cap = cv2.VideoCapture(str(DEMO))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr)
    cap.release()
    if not frames:
        raise SystemExit(f"could not decode {DEMO} (OpenCV without FFmpeg?)")
    step = len(frames) / n
    return [cv2.cvtColor(frames[int((k + 0.5) * step)], cv2.COLOR_BGR2RGB) for k in range(n)]


def fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` at ``size`` (w, h): scaled to fit, centred on black where the aspect differs."""
    import cv2

    w, h = size
    s = min(w / rgb.shape[1], h / rgb.shape[0])
    sw, sh = round(rgb.shape[1] * s), round(rgb.shape[0] * s)
    scaled = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - sh) // 2, (w - sw) // 2
    out[y : y + sh, x : x + sw] = scaled
    return out


def timed(fn: Callable[[int], object], budget: float, min_calls: int = 3) -> tuple[int, float]:
    """(calls, seconds): ``fn(i)`` for i = 0, 1, ... until ``budget`` seconds and ``min_calls``."""
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < budget:
        fn(calls)
        calls += 1
    return calls, time.perf_counter() - t0


class Clock:
    """The run's time budget, shared out among the parts still to run (unused time rolls over)."""

    def __init__(self, budget: float, parts: Sequence[str]) -> None:
        self.end = time.monotonic() + budget
        self.todo = list(parts)
        self.part_end = self.end

    def start(self, part: str) -> None:
        left = max(0.0, self.end - time.monotonic())
        share = SHARES[part] / sum(SHARES[p] for p in self.todo)
        self.todo.remove(part)
        self.part_end = time.monotonic() + left * share
        progress(f"part {part}: {left * share:.0f} s of the {left:.0f} s left")

    def over(self) -> bool:
        return time.monotonic() > self.part_end


# ---------------------------------------------------------------------------- detector


def _stage_row(det: Any, n: int, dt: float) -> dict[str, Any]:
    st = det.stage_seconds
    total = sum(st.values()) or 1.0
    return {
        "ms_per_frame": round(1000 * dt / n, 3),
        "frames_per_s": round(n / dt, 1),
        "network_frames_per_s": round(n / st["network"], 1) if st["network"] else None,
        "canvas_share": round(st["canvas"] / total, 3),
        "network_share": round(st["network"] / total, 3),
        "postprocess_share": round(st["postprocess"] / total, 3),
    }
