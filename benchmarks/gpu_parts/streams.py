"""The gpu scenario's streams part: the service's batcher and worker pool fed by N paced streams."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from benchmarks.gpu_parts.common import FPS, STREAM_SIZE, Clock, fit
from benchmarks.report import (
    percentiles,
    progress,
)


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
