"""Local worker pool vs a Triton model server, in one run, on this machine (issue #12).

    python -m benchmarks triton [--seconds S] [--rounds N] [--in-flight K] [--config PATH] [--out DIR]

Same Engine (detector and classifiers of --config, default: mmod, no classifier) on every backend:
local workers, Triton with raw RGB frames, Triton with JPEG frames (triton_transport):
- round trip: one 640x480 frame at a time, local and Triton alternated, p50/p95 ms; the difference
  is the latency Triton adds per frame (gRPC, serialization, Triton's queue and Python stub);
- load: K batches in flight for S seconds on each backend (alternated over N rounds), frames/s and
  CPU ms per frame over every process involved (front end, worker / model server with its children);
- two front ends: two client processes against one model server, frames/s each and together.
Writes triton-<machine>.json and .md (needs `make triton-setup`). Numbers from a shared 2-core
machine are only meaningful as ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp)
import cv2
import numpy as np

from benchmarks.clips.video import read_frames
from benchmarks.processes import free_port, live_tree_cpu_s
from benchmarks.report import output_args, parser, progress, run_record, save

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "media" / "short_hamilton_clip.mp4"  # faces in most frames


def frames(n: int = 16) -> list[np.ndarray]:
    """``n`` frames of the clip at 640x480: every 10th (its first frames show no face)."""
    from streamer.config import DEMO_VIDEO

    got = read_frames(VIDEO if VIDEO.exists() else DEMO_VIDEO, n, start=9, step=10)
    return [np.ascontiguousarray(cv2.resize(rgb, (640, 480))) for rgb in got]


async def round_trip(pool, imgs: list[np.ndarray], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await pool.run([imgs[i % len(imgs)]])
        out.append(time.perf_counter() - t0)
    return out


async def load(pool, imgs: list[np.ndarray], seconds: float, in_flight: int, pids: list[int]) -> dict:
    from streamer.inference.triton_client import BackendUnavailable

    done = [0, 0, 0]  # frames, faces, dropped (late or refused)
    stop = time.monotonic() + seconds

    async def caller(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            try:
                results, _ = await pool.run([imgs[i % len(imgs)]])
            except BackendUnavailable:
                done[2] += 1
                i += in_flight
                continue
            done[0] += 1
            done[1] += sum(len(r.faces) for r in results)
            i += in_flight

    c0, t0 = live_tree_cpu_s(pids), time.monotonic()
    await asyncio.gather(*(caller(k) for k in range(in_flight)))
    wall, cpu = time.monotonic() - t0, live_tree_cpu_s(pids) - c0
    return {
        "frames_per_s": done[0] / wall,
        "faces_per_s": done[1] / wall,
        "cpu_ms_per_frame": 1000 * cpu / max(1, done[0]),
        "dropped": done[2],
    }


def _client_proc(url: str, seconds: float, in_flight: int, q) -> None:
    from streamer.inference.triton_client import TritonPool
    from streamer.metrics import Metrics

    async def main() -> dict:
        pool = TritonPool([url], Metrics(), 640, 10.0)
        await pool.start()
        imgs = frames()
        await pool.run(imgs[:1])
        r = await load(pool, imgs, seconds, in_flight, [os.getpid()])
        await pool.close()
        return r

    q.put(asyncio.run(main()))


def _pct(xs: list[float], q: float) -> float:
    return 1000 * float(np.percentile(xs, q))


async def run(args: argparse.Namespace) -> dict:
    from streamer.config import load_config
    from streamer.inference.pool import WorkerPool
    from streamer.inference.triton_client import TritonPool
    from streamer.metrics import Metrics

    config = (
        load_config(args.config) if args.config else load_config(None, {"pipeline": {"detector": "mmod"}})
    )
    p = config.pipeline
    from streamer.inference.engine import engine_spec

    spec = engine_spec(config)
    grpc, http, met = free_port(), free_port(), free_port()
    log = Path(tempfile.mkdtemp()) / "model-server.log"
    cmd = [sys.executable, "-m", "streamer", "model-server", "--grpc-port", str(grpc)]
    cmd += ["--http-port", str(http), "--metrics-port", str(met)]
    if args.config:
        cmd += ["--config", str(args.config)]
    with log.open("w") as f:
        server = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    local = WorkerPool(spec, 1)
    remote = TritonPool([f"127.0.0.1:{grpc}"], Metrics(), p.detect_max_side, 10.0)
    remote_jpeg = TritonPool([f"127.0.0.1:{grpc}"], Metrics(), p.detect_max_side, 10.0, transport="jpeg")
    try:
        await local.start()
        deadline = time.monotonic() + 300
        while "model server ready" not in log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"model server did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.5)
        await remote.start()
        imgs = frames()
        for pool in (local, remote, remote_jpeg):  # warm up: compile, connect
            await pool.run(imgs[:1])
        served = [os.getpid(), server.pid]
        pids = {"local": [os.getpid(), *local.worker_pids()], "triton": served, "triton-jpeg": served}
        rt: dict[str, list[float]] = {n: [] for n in pids}
        ld: dict[str, list[dict]] = {n: [] for n in pids}
        for r in range(args.rounds):
            order = [("local", local), ("triton", remote), ("triton-jpeg", remote_jpeg)]
            if r % 2:
                order.reverse()
            for name, pool in order:
                rt[name] += await round_trip(pool, imgs, args.frames)
                ld[name].append(await load(pool, imgs, args.seconds, args.in_flight, pids[name]))
            progress(f"round {r + 1}/{args.rounds} done")
        await local.close()  # the two-front-end run has the CPU to itself and the model server
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        procs = [
            ctx.Process(target=_client_proc, args=(f"127.0.0.1:{grpc}", args.seconds, args.two_in_flight, q))
            for _ in range(2)
        ]
        for pr in procs:
            pr.start()
        two = [q.get(timeout=args.seconds + 120) for _ in procs]
        for pr in procs:
            pr.join(30)
        import urllib.request

        metrics_text = urllib.request.urlopen(f"http://127.0.0.1:{met}/metrics", timeout=5).read().decode()
    finally:
        await remote.close()
        await remote_jpeg.close()
        server.terminate()
        server.wait(60)
    counts = {
        line.split("{")[0]: float(line.split()[-1])
        for line in metrics_text.splitlines()
        if line.startswith(("nv_inference_count{", "nv_inference_exec_count{"))
    }

    def mean(name: str, key: str) -> float:
        return statistics.mean(x[key] for x in ld[name])

    return {
        "detector": p.detector,
        "classifiers": [c.name for c in spec.classifiers],
        "round_trip_ms": {n: {"p50": _pct(v, 50), "p95": _pct(v, 95), "n": len(v)} for n, v in rt.items()},
        "load": {n: {k: mean(n, k) for k in ld[n][0]} for n in ld},
        "in_flight": args.in_flight,
        "two_in_flight": args.two_in_flight,
        "two_front_ends": {"each": two, "frames_per_s_total": sum(x["frames_per_s"] for x in two)},
        "triton_counts": counts,
    }


def markdown(r: dict) -> str:
    rt, ld = r["round_trip_ms"], r["load"]
    lines = [
        f"Local worker vs Triton model server ({r['machine']['cores']} CPUs, shared; "
        f"detector {r['detector']}, classifiers {r['classifiers'] or 'none'}; 640x480 frames)",
        "",
        "| backend | round trip p50 ms | p95 ms | frames/s (in flight "
        f"{r['in_flight']}) | faces/s | CPU ms/frame (all processes) |",
        "|---|---|---|---|---|---|",
    ]
    for n in ("local", "triton", "triton-jpeg"):
        lines.append(
            f"| {n} | {rt[n]['p50']:.1f} | {rt[n]['p95']:.1f} | {ld[n]['frames_per_s']:.1f} | "
            f"{ld[n]['faces_per_s']:.1f} | {ld[n]['cpu_ms_per_frame']:.1f} |"
        )
    added = rt["triton"]["p50"] - rt["local"]["p50"]
    two = r["two_front_ends"]
    each = ", ".join(f"{x['frames_per_s']:.1f} ({x['dropped']} dropped)" for x in two["each"])
    c = r["triton_counts"]
    lines += [
        "",
        f"Latency Triton adds per frame (p50): {added:+.1f} ms; throughput ratio triton/local: "
        f"{ld['triton']['frames_per_s'] / ld['local']['frames_per_s']:.2f}.",
        f"Two front ends ({r['two_in_flight']} in flight each) against one model server: {each} frames/s "
        f"(total {two['frames_per_s_total']:.1f}).",
        f"Triton: {c.get('nv_inference_count', 0):.0f} requests in {c.get('nv_inference_exec_count', 0):.0f} "
        "model calls over the whole run.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = parser("triton", __doc__)
    ap.add_argument(
        "--config", type=Path, default=None, help="models to serve (default: mmod, no classifier)"
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="each load window")
    ap.add_argument("--rounds", type=int, default=2, help="local/triton alternations")
    ap.add_argument("--frames", type=int, default=30, help="round trips per backend per round")
    ap.add_argument("--in-flight", type=int, default=2, help="batches in flight during the load runs")
    ap.add_argument("--two-in-flight", type=int, default=1, help="in flight per front end, two front ends")
    output_args(ap, "triton")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    record = run_record("triton", argv)
    result = record | asyncio.run(run(args))
    save(
        args, "triton", result, f"`{record['command']}`, {record['started_at']}\n\n" + markdown(result) + "\n"
    )
    return 0
