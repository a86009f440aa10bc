"""GPU figures in one run (benchmarks/gpu.sh runs it on the GPU machine): the MMOD detector, the face
backbone and the classifier heads on Keras (``KERAS_BACKEND=jax``), and a streams sweep on the
inference side.

    python -m benchmarks gpu [--quick] [--parts detector,backbone,streams]
                             [--sizes 640x480,1280x720,1920x1080] [--batches 1,8,16]
                             [--face-batches 1,32,128] [--max-batch 16] [--workers 1]
                             [--stream-counts 1,8,16] [--max-streams 128] [--seconds 5]
                             [--latency-limit 0.1] [--budget-s 300] [--out DIR] [--name STEM]

Frames: the demo clip's (streamer/assets/demo.mp4, 640x360, in git), nine frames from across it,
letterboxed (black bands) to a 4:3 size and resized to a 16:9 one.

detector: ``MMODDetector(runtime="keras")`` per size, batch 1 (one frame a call) and each of
--batches (one call of B frames): ms per frame and det-frames/s of the whole ``detect`` (the image
pyramid's canvas is built on the CPU, the network runs on the GPU, NMS on the CPU), each stage's
share, the network's own frames/s, the first call's seconds (XLA compiles one program per canvas
shape and batch count) and faces per frame. ONNX Runtime on the CPU (the service's default on a
CPU-only machine, 2 threads) at batch 1, where installed, is the same machine's CPU reference.

backbone: ``FaceBackbone.features`` (dlib's face ResNet ported to Keras) on random 150x150 chips
at --face-batches: faces/s; dlib's 5-point alignment (``chips``, CPU) per face on the frames'
faces where dlib-bin is installed; then each config.toml classifier head
(``Classifier.predict_proba`` on backbone features) at the same batches: ms per face.

streams: the web service itself needs aiortc and av, which the GPU machine lacks (av's wheel
bundles FFmpeg, too big beside the model files in the 64 MiB a device call carries), so the
streams figure is the inference side's: the service's own DetectionBatcher and WorkerPool
(--workers spawned processes, each the service's Engine: MMOD on Keras over whole 640x480 frames
at detect_max_side 640, config.toml's classifiers on the face backbone, warmed up as the service
warms them) driven in this process by N streams paced at 30 fps. As the service's Stream does, a
stream sends its newest frame whenever its last one has come back. Not included: decoding,
tracking, drawing, JPEG/WebRTC encoding (CPU work per stream, the service scenario's ``stages``),
and "regions" planning (the service's default looks at less than the whole frame). Latency is
from a frame's capture to its faces (detected and classified), not to the viewer. Per level:
detections per second per stream (min, mean), latency p50/p95/p99, frames per detector call,
faces per frame. A level keeps up ("p95") when p95 latency <= --latency-limit, and detects
"every frame" when also every stream gets >= 95% of its 30 fps detected. Levels 1, 2, 4, ...
until both fail or --max-streams, then bisection between the last level that kept up and the
first that did not (--refine levels). Before the sweep, the detector is compiled for every batch
count up to --max-batch (a batch of a new size otherwise waits for XLA; the seconds are reported).
Beside it a throughput model: the detector part's 640x480 det-frames/s at each batch / 30.

Writes ``gpu-<machine>.json`` and ``.md`` after each part, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_tag
from benchmarks.report import (
    markdown_table,
    output_args,
    parser,
    percentiles,
    progress,
    run_record,
    save,
    write,
)

ROOT = Path(__file__).resolve().parents[1]
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


def detector_part(args: Any, clip: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    from streamer.detect.mmod import MMODDetector

    det = MMODDetector(runtime="keras", max_batch=max(args.batches))
    rows, cpu_rows = [], []
    for size in args.sizes:
        frames = [fit(f, size) for f in clip]
        for b in args.batches:
            if clock.over():
                progress(f"detector {size[0]}x{size[1]} batch {b}: skipped, out of time")
                rows.append({"size": f"{size[0]}x{size[1]}", "batch": b, "skipped": "out of time"})
                continue
            t0 = time.perf_counter()
            det.detect([frames[i % len(frames)] for i in range(b)])
            first = time.perf_counter() - t0
            det.detect([frames[(i + 1) % len(frames)] for i in range(b)])  # a second warm call
            for k in det.stage_seconds:
                det.stage_seconds[k] = 0.0
            found: list[int] = []
            calls, dt = timed(
                lambda c, b=b, fr=frames, found=found: found.extend(
                    map(len, det.detect([fr[(c * b + i) % len(fr)] for i in range(b)]))
                ),
                args.row_seconds,
            )
            row = {
                "size": f"{size[0]}x{size[1]}",
                "batch": b,
                **_stage_row(det, calls * b, dt),
                "first_call_s": round(first, 2),
                "faces_per_frame": round(float(np.mean(found)), 2),
                "calls": calls,
            }
            rows.append(row)
            progress(
                f"detector keras {row['size']} batch {b}: {row['frames_per_s']} det-frames/s "
                f"({row['ms_per_frame']} ms/frame; network alone {row['network_frames_per_s']} frames/s, "
                f"canvas {row['canvas_share']:.0%}); first call {row['first_call_s']} s"
            )
    if importlib.util.find_spec("onnxruntime") is not None and not clock.over():
        try:
            ort = MMODDetector(runtime="onnxruntime")
            for size in args.sizes:
                frames = [fit(f, size) for f in clip]
                ort.detect(frames[:1])
                for k in ort.stage_seconds:
                    ort.stage_seconds[k] = 0.0
                calls, dt = timed(
                    lambda c, fr=frames: ort.detect([fr[c % len(fr)]]), min(1.0, args.row_seconds), 2
                )
                row = {"size": f"{size[0]}x{size[1]}", "batch": 1, **_stage_row(ort, calls, dt)}
                cpu_rows.append(row)
                progress(
                    f"detector onnxruntime (CPU, 2 threads) {row['size']}: {row['frames_per_s']} det-frames/s"
                )
                if clock.over():
                    break
        except Exception as e:  # the reference only: never costs the GPU figures
            progress(f"onnxruntime reference failed: {type(e).__name__}: {e}")
            cpu_rows.append({"error": f"{type(e).__name__}: {e}"[:300]})
    return {"runtime": "keras", "rows": rows, "onnxruntime_cpu": cpu_rows}


# ---------------------------------------------------------------------------- backbone and heads


def backbone_part(args: Any, clip: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    from benchmarks.service.options import Options, classifier_configs
    from streamer.classify import Classifier
    from streamer.classify.backbone import FaceBackbone

    out: dict[str, Any] = {}
    biggest = max(args.face_batches)
    try:
        bb: Any = FaceBackbone(max_batch=biggest)
        features = bb.features
    except ImportError as e:  # no dlib-bin: the ResNet alone (the chips need dlib's landmarks)
        from streamer.classify.backbone import default_paths
        from streamer.classify.classifier import _compiled_predict
        from streamer.classify.face_resnet import load_face_resnet

        bb = None
        predict = _compiled_predict(load_face_resnet(default_paths()[0]))
        out["note"] = f"dlib not importable ({e}): the ResNet alone, no chips"

        def features(x: np.ndarray) -> Any:
            return predict(np.asarray(x, np.float32))

    rng = np.random.default_rng(0)
    rows = []
    for b in args.face_batches:
        if clock.over():
            rows.append({"batch": b, "skipped": "out of time"})
            continue
        chips = rng.integers(0, 256, (b, 150, 150, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        features(chips)
        first = time.perf_counter() - t0
        features(chips)
        calls, dt = timed(lambda _c, x=chips: features(x), args.row_seconds)
        rows.append(
            {
                "batch": b,
                "faces_per_s": round(calls * b / dt, 1),
                "ms_per_face": round(1000 * dt / (calls * b), 3),
                "ms_per_batch": round(1000 * dt / calls, 3),
                "first_call_s": round(first, 2),
                "calls": calls,
            }
        )
        progress(f"backbone batch {b}: {rows[-1]['faces_per_s']} faces/s, first call {first:.2f} s")
    out["rows"] = rows
    if bb is not None and not clock.over():  # dlib's alignment, on the CPU, per face of the clip
        try:
            from streamer.detect.mmod import MMODDetector

            frames = [fit(f, STREAM_SIZE) for f in clip]
            runtime = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "keras"  # boxes only
            boxes = MMODDetector(runtime=runtime, max_batch=len(frames)).detect(frames)
            faces = sum(map(len, boxes))
            if faces:
                calls, dt = timed(
                    lambda _c: [bb.chips(f, bs) for f, bs in zip(frames, boxes, strict=True)], 0.5, 2
                )
                out["chips_ms_per_face"] = round(1000 * dt / (calls * faces), 3)
                progress(f"dlib chips: {out['chips_ms_per_face']} ms per face (CPU, {faces} faces)")
        except Exception as e:  # never costs the heads' figures
            progress(f"chips failed: {type(e).__name__}: {e}")
            out["chips_error"] = f"{type(e).__name__}: {e}"[:300]
    heads = []
    for c in classifier_configs(Options()):
        if clock.over():
            break
        clf = Classifier(c.name, c.model, c.threshold, max_batch=biggest)
        d = clf.model.input_shape[-1] if clf.uses_backbone else None
        h, w = clf.meta.input_size
        for b in args.face_batches:
            x = (
                rng.normal(size=(b, d)).astype(np.float32)
                if d is not None
                else rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8)
            )
            t0 = time.perf_counter()
            clf.predict_proba(x)
            first = time.perf_counter() - t0
            calls, dt = timed(lambda _c, x=x, clf=clf: clf.predict_proba(x), min(1.0, args.row_seconds))
            heads.append(
                {
                    "classifier": c.name,
                    "input": clf.meta.features if d is not None else f"{w}x{h} pixels",
                    "batch": b,
                    "ms_per_face": round(1000 * dt / (calls * b), 4),
                    "ms_per_batch": round(1000 * dt / calls, 3),
                    "first_call_s": round(first, 2),
                }
            )
            progress(f"head {c.name} batch {b}: {heads[-1]['ms_per_face']} ms per face")
    out["heads"] = heads
    return out


# ---------------------------------------------------------------------------- streams


class Sweep:
    """N paced streams through the service's batcher and worker pool."""

    def __init__(self, args: Any, frames: list[np.ndarray]) -> None:
        self.args = args
        self.frames = frames
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.results: dict[str, list[tuple[float, int]]] = {}
        self.measuring = False

    async def start(self) -> dict[str, Any]:
        from benchmarks.service.options import Options, classifier_configs
        from streamer.inference.engine import EngineSpec
        from streamer.inference.pool import WorkerPool
        from streamer.metrics import Metrics
        from streamer.pipeline.batcher import DetectionBatcher

        a = self.args
        spec = EngineSpec(
            detector="mmod",
            runtime="keras",
            detect_max_side=STREAM_SIZE[0],
            classifiers=tuple(classifier_configs(Options())),
        )
        self.pool = WorkerPool(spec, a.workers)
        t0 = time.perf_counter()
        status = await self.pool.start()
        started = time.perf_counter() - t0
        progress(f"streams: {a.workers} worker(s) up in {started:.1f} s: {status}")
        compile_s = []
        for k in range(1, a.max_batch + 1):  # every batch count the batcher can form, in every worker
            t0 = time.perf_counter()
            batch = [self.frames[i % len(self.frames)] for i in range(k)]
            await asyncio.gather(*(self.pool.run(batch) for _ in range(a.workers)))
            compile_s.append(round(time.perf_counter() - t0, 2))
        progress(f"streams: detector compiled for batches 1..{a.max_batch} in {sum(compile_s):.1f} s")
        self.batcher = DetectionBatcher(
            self.pool,
            Metrics(),
            a.max_batch,
            a.max_wait_ms / 1000.0,
            concurrency=a.workers,
            active_streams=lambda: set(self.tasks),
        )
        self.batcher.start()
        return {
            "workers_start_s": round(started, 2),
            "classifiers": status.classifiers,
            "classifiers_failed": status.failed,
            "detector_compile_s_per_batch": compile_s,
        }

    async def close(self) -> None:
        """Stop what started (also after a failed start: no worker left behind)."""
        if hasattr(self, "batcher"):
            await self.set_streams(0)
            await self.batcher.stop()
        if hasattr(self, "pool"):
            await self.pool.close()

    def _on_result(self, d: Any) -> None:
        got = self.results.get(d.stream)  # None: a stream removed since (the batcher drops those)
        if self.measuring and got is not None:
            got.append((time.time() - d.captured_at, len(d.faces)))

    async def _stream(self, sid: str, phase: int) -> None:
        from streamer.types import Frame

        t0, last = time.monotonic(), -1
        while True:
            i = int((time.monotonic() - t0) * FPS)
            if i == last:  # wait for the next frame's capture time
                await asyncio.sleep(max(0.0, t0 + (i + 1) / FPS - time.monotonic()))
                continue
            last = i
            if not self.batcher.busy(sid):  # as Stream: only when its last frame came back
                image = self.frames[(i + phase) % len(self.frames)]
                self.batcher.submit(Frame(sid, i, image, time.time()), self._on_result)

    async def set_streams(self, n: int) -> None:
        for sid in list(self.tasks)[n:]:
            task = self.tasks.pop(sid)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.batcher.forget(sid)
            self.results.pop(sid, None)
        k = len(self.tasks)
        while len(self.tasks) < n:
            sid = f"s{k}"
            self.results[sid] = []
            self.tasks[sid] = asyncio.create_task(self._stream(sid, 7 * k))
            k += 1

    async def measure(self, n: int) -> dict[str, Any]:
        a = self.args
        await self.set_streams(n)
        await asyncio.sleep(a.warmup)
        for v in self.results.values():
            v.clear()
        b0 = self.batcher.batches
        t0 = time.monotonic()
        self.measuring = True
        await asyncio.sleep(a.seconds)
        self.measuring = False
        dt = time.monotonic() - t0
        batches = self.batcher.batches - b0
        per = [len(v) / dt for v in self.results.values()]
        lat = [x for v in self.results.values() for x, _ in v]
        faces = [f for v in self.results.values() for _, f in v]
        p = percentiles(lat)
        row = {
            "streams": n,
            "det_per_s_min": round(min(per), 2),
            "det_per_s_mean": round(float(np.mean(per)), 2),
            "det_frames_per_s_total": round(sum(per), 1),
            "latency_p50_s": p["p50"],
            "latency_p95_s": p["p95"],
            "latency_p99_s": p["p99"],
            "frames_per_call": round(len(lat) / batches, 2) if batches else None,
            "faces_per_frame": round(float(np.mean(faces)), 2) if faces else 0.0,
        }
        row["p95_ok"] = p["p95"] is not None and p["p95"] <= a.latency_limit
        row["every_frame"] = row["p95_ok"] and row["det_per_s_min"] >= 0.95 * FPS
        progress(
            f"streams={n}: {row['det_per_s_min']}-{row['det_per_s_mean']} det/s per stream "
            f"({row['det_frames_per_s_total']} in all, {row['frames_per_call']} per call), latency p50 "
            f"{row['latency_p50_s']} p95 {row['latency_p95_s']} s; p95_ok={row['p95_ok']} "
            f"every_frame={row['every_frame']}"
        )
        return row


def _bounds(rows: list[dict[str, Any]], key: str) -> tuple[int, int | None]:
    """(most streams that passed ``key``, fewest that failed it above those)."""
    ok = [r["streams"] for r in rows if r[key]]
    lo = max(ok) if ok else 0
    bad = [r["streams"] for r in rows if not r[key] and r["streams"] > lo]
    return lo, (min(bad) if bad else None)


async def _levels(sweep: Sweep, args: Any, clock: Clock, rows: list[dict[str, Any]]) -> None:
    """Measure levels into ``rows``: --stream-counts, or 1, 2, 4, ... then bisection (--refine)."""
    levels = list(args.stream_counts)
    n = 1
    while not clock.over() or not rows:  # at least one level, however long the start took
        if args.stream_counts:
            if not levels:
                break
            n = levels.pop(0)
        elif n > args.max_streams:
            break
        rows.append(await sweep.measure(n))
        if not args.stream_counts:
            if not rows[-1]["p95_ok"]:
                break  # behind (every_frame needs p95_ok too): more streams only add latency
            n *= 2
    for _ in range(0 if args.stream_counts else args.refine):
        if clock.over():
            break
        for key in ("p95_ok", "every_frame"):  # the headline first
            lo, hi = _bounds(rows, key)
            if hi is not None and hi - lo > max(1, lo // 8):
                rows.append(await sweep.measure((lo + hi) // 2))
                rows.sort(key=lambda r: r["streams"])
                break
        else:
            break


async def _streams(args: Any, frames: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    sweep = Sweep(args, frames)
    rows: list[dict[str, Any]] = []
    try:
        out: dict[str, Any] = await sweep.start()
        try:
            await _levels(sweep, args, clock, rows)
        except Exception as e:  # keep the levels measured so far
            import traceback

            traceback.print_exc()
            out["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        await sweep.close()
    out["rows"] = rows
    for key, name in (("p95_ok", "max_streams_p95"), ("every_frame", "max_streams_every_frame")):
        lo, hi = _bounds(rows, key)
        out[name], out[name.replace("max_", "first_not_")] = lo, hi
    return out


def streams_part(args: Any, clip: list[np.ndarray], clock: Clock) -> dict[str, Any]:
    frames = [fit(f, STREAM_SIZE) for f in clip]
    out = asyncio.run(_streams(args, frames, clock))
    out.update(
        fps=FPS,
        frame_size=f"{STREAM_SIZE[0]}x{STREAM_SIZE[1]}",
        latency_limit_s=args.latency_limit,
        max_batch=args.max_batch,
        workers=args.workers,
        what="inference side: the service's DetectionBatcher + WorkerPool (Engine: MMOD on Keras, whole "
        "frames, config.toml's classifiers), N paced in-process streams; latency capture -> faces",
    )
    return out


# ---------------------------------------------------------------------------- report


def throughput_model(detector: dict[str, Any]) -> list[dict[str, Any]]:
    """Streams the detector alone could serve at 30 fps, from its 640x480 det-frames/s per batch."""
    size = f"{STREAM_SIZE[0]}x{STREAM_SIZE[1]}"
    return [
        {
            "batch": r["batch"],
            "det_frames_per_s": r["frames_per_s"],
            "streams_at_30fps": int(r["frames_per_s"] // FPS),
        }
        for r in detector.get("rows", [])
        if r.get("size") == size and "frames_per_s" in r
    ]


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        f"# GPU figures: {m.get('gpu') or 'no GPU'} ({data.get('keras_backend')}, jax {data.get('jax')})",
        "",
        f"`{data['command']}`, {data['started_at']}, commit {m.get('git_commit')}; "
        f"devices: {data.get('jax_devices')}",
        "",
    ]
    det = data.get("detector")
    if det:
        lines += [
            "## MMOD detector (Keras)",
            "",
            markdown_table(
                det["rows"],
                [
                    "size",
                    "batch",
                    "frames_per_s",
                    "ms_per_frame",
                    "network_frames_per_s",
                    "canvas_share",
                    "network_share",
                    "postprocess_share",
                    "first_call_s",
                    "faces_per_frame",
                    "skipped",
                ],
            ),
        ]
        if det.get("onnxruntime_cpu"):
            lines += [
                "ONNX Runtime on this machine's CPU (2 threads), batch 1:",
                "",
                markdown_table(det["onnxruntime_cpu"], ["size", "frames_per_s", "ms_per_frame", "error"]),
            ]
    if data.get("throughput_model"):
        lines += [
            "Throughput model (detector alone, 640x480): streams at 30 fps = det-frames/s / 30",
            "",
            markdown_table(data["throughput_model"], ["batch", "det_frames_per_s", "streams_at_30fps"]),
        ]
    bb = data.get("backbone")
    if bb:
        lines += [
            "## Face backbone (dlib ResNet on Keras)",
            "",
            markdown_table(
                bb["rows"], ["batch", "faces_per_s", "ms_per_face", "ms_per_batch", "first_call_s", "skipped"]
            ),
        ]
        if "chips_ms_per_face" in bb:
            lines += [f"dlib's alignment (chips, CPU): {bb['chips_ms_per_face']} ms per face", ""]
        if bb.get("note"):
            lines += [bb["note"], ""]
        if bb.get("heads"):
            lines += [
                "Classifier heads:",
                "",
                markdown_table(
                    bb["heads"],
                    ["classifier", "input", "batch", "ms_per_face", "ms_per_batch", "first_call_s"],
                ),
            ]
    st = data.get("streams")
    if st:
        lines += [
            "## Streams (inference side, 30 fps 640x480, whole frames)",
            "",
            f"Keeps p95 <= {st['latency_limit_s']} s: **{st['max_streams_p95']}** streams "
            f"(first miss: {st['first_not_streams_p95']}); every frame detected too: "
            f"**{st['max_streams_every_frame']}** (first miss: {st['first_not_streams_every_frame']}). "
            f"max_batch {st['max_batch']}, {st['workers']} worker(s); workers up in "
            f"{st['workers_start_s']} s, detector compiled for batches 1..{st['max_batch']} in "
            f"{sum(st['detector_compile_s_per_batch']):.1f} s.",
            "",
            markdown_table(
                st["rows"],
                [
                    "streams",
                    "det_per_s_min",
                    "det_per_s_mean",
                    "det_frames_per_s_total",
                    "latency_p50_s",
                    "latency_p95_s",
                    "latency_p99_s",
                    "frames_per_call",
                    "faces_per_frame",
                    "p95_ok",
                    "every_frame",
                ],
            ),
            st["what"],
            "",
        ]
        if st.get("error"):
            lines += [f"**streams stopped early**: {st['error']}", ""]
    if data.get("part_seconds"):
        lines += [f"Seconds per part: {data['part_seconds']}", ""]
    for name, err in data.get("errors", {}).items():
        lines += [f"**{name} failed**: {err}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the workers share the GPU
    clock = Clock(args.budget_s, args.parts)
    data: dict[str, Any] = run_record("gpu", argv)
    import keras

    data["keras_backend"] = keras.backend.backend()
    data["keras"] = keras.__version__
    if data["keras_backend"] == "jax":
        import jax

        data["jax"] = jax.__version__
        data["jax_devices"] = [str(d) for d in jax.devices()]
    data["options"] = {k: v for k, v in vars(args).items() if k not in ("out", "name")}
    data["options"]["sizes"] = [f"{w}x{h}" for w, h in args.sizes]
    data["errors"] = {}
    progress(f"keras {data['keras']} on {data['keras_backend']}; devices {data.get('jax_devices')}")
    clip = demo_frames()
    stem = args.name or f"gpu-{machine_tag()}" + ("-quick" if args.quick else "")
    args.name = stem
    parts = {"detector": detector_part, "backbone": backbone_part, "streams": streams_part}
    for name in args.parts:
        clock.start(name)
        t0 = time.monotonic()
        try:
            data[name] = parts[name](args, clip, clock)
        except Exception as e:  # one part failing keeps the others' figures
            import traceback

            traceback.print_exc()
            data["errors"][name] = f"{type(e).__name__}: {e}"[:500]
        data.setdefault("part_seconds", {})[name] = round(time.monotonic() - t0, 1)
        if "detector" in data:
            data["throughput_model"] = throughput_model(data["detector"])
        data["loaded_modules_absent_on_gpu_machine"] = sorted(m for m in ABSENT if m in sys.modules)
        write(stem, data, markdown(data), args.out)  # after each part: a run cut short keeps it
    save(args, "gpu", data, markdown(data))
    return 1 if data["errors"] else 0
