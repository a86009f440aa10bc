"""Live service benchmark: the real service on a video paced at its frame rate, watched over MJPEG.

Measures what a viewer gets: input FPS (frames the source decoded), output FPS
(frames the viewer received), capture-to-receive latency per frame (from each
MJPEG part's X-Capture-Time), detections per second and the age of the boxes.

    python -m benchmarks.live [--seconds 30] [--detector dlib|mmod] [--video FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import time
from pathlib import Path

from aiohttp import ClientSession, web

from benchmarks.machine import machine_info, machine_tag
from benchmarks.report import markdown_table, percentiles, write
from streamer.config import DEMO_VIDEO, load_config
from streamer.web.app import create_app
from streamer.web.keys import METRICS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample(app: web.Application, name: str, **labels: str) -> float:
    v = app[METRICS].registry.get_sample_value(name, labels)
    return float(v or 0.0)


async def _watch_mjpeg(url: str, stop: asyncio.Event, samples: list[tuple[float, float]]) -> None:
    """Read the MJPEG stream; record (receive time, capture time) per frame."""
    async with ClientSession() as s, s.get(url) as r:
        while not stop.is_set():
            line = await r.content.readline()
            if not line:
                return
            if line.startswith(b"X-Capture-Time:"):
                captured = float(line.split(b":", 1)[1])
            elif line.startswith(b"Content-Length:"):
                n = int(line.split(b":", 1)[1])
            elif line == b"\r\n" and "n" in locals():
                await r.content.readexactly(n + 2)
                samples.append((time.time(), captured))
                del n


async def run(seconds: float, warmup: float, detector: str, video: Path, max_batch: int) -> dict[str, object]:
    config = load_config(
        None,
        {
            "pipeline": {"detector": detector, "max_batch": max_batch},
            "sources": [{"id": "bench", "file": str(video), "loop": True, "realtime": True}],
            "output": {"mjpeg_max_fps": 240.0},
        },
        environ={},
    )
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_mjpeg(f"http://127.0.0.1:{port}/streams/bench/mjpeg", stop, samples))
    try:
        print(f"warming up {warmup:.0f}s ...", file=sys.stderr, flush=True)
        await asyncio.sleep(warmup)

        def snap() -> dict[str, float]:
            return {
                "t": time.monotonic(),
                "in": _sample(app, "streamer_frames_in_total", stream="bench"),
                "overrun": _sample(
                    app, "streamer_frames_dropped_total", stream="bench", reason="source_overrun"
                ),
                "out": _sample(app, "streamer_frames_out_total", stream="bench"),
                "det": _sample(app, "streamer_detections_total", stream="bench"),
                "recv": float(len(samples)),
            }

        a = snap()
        t_start = time.time()
        for i in range(int(seconds)):
            await asyncio.sleep(1.0)
            print(
                f"\rmeasuring {i + 1}/{int(seconds)} s, {len(samples)} frames received",
                end="",
                file=sys.stderr,
                flush=True,
            )
        print(file=sys.stderr)
        b = snap()
        t_end = time.time()
    finally:
        stop.set()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await runner.cleanup()
    dt = b["t"] - a["t"]
    lat = [recv - cap for recv, cap in samples if t_start <= recv <= t_end]
    return {
        "detector": detector,
        "video": video.name,
        "seconds": round(dt, 2),
        "input_fps": round((b["in"] + b["overrun"] - a["in"] - a["overrun"]) / dt, 2),
        "pipeline_fps": round((b["out"] - a["out"]) / dt, 2),
        "output_fps": round((b["recv"] - a["recv"]) / dt, 2),
        "source_overrun_per_s": round((b["overrun"] - a["overrun"]) / dt, 2),
        "detections_per_s": round((b["det"] - a["det"]) / dt, 3),
        "latency_s": percentiles(lat),
        "frames_measured": len(lat),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=8.0)
    ap.add_argument("--detector", choices=["dlib", "mmod"], default="dlib")
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--video", type=Path, default=DEMO_VIDEO)
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.seconds, args.warmup, args.detector, args.video, args.max_batch))
    data = {"benchmark": "live", "machine": machine_info(), "results": [result]}
    row = {**result, **{f"latency {k}": v for k, v in result["latency_s"].items()}}  # type: ignore[dict-item]
    md = (
        f"# Live service benchmark ({machine_tag()})\n\n`python -m benchmarks.live --detector "
        f"{args.detector} --seconds {args.seconds:.0f}`\n\n"
        + markdown_table(
            [row],
            [
                "detector",
                "input_fps",
                "output_fps",
                "source_overrun_per_s",
                "detections_per_s",
                "latency p50",
                "latency p95",
                "latency p99",
                "frames_measured",
            ],
        )
    )
    js, mdp = write(f"live-{args.detector}-{machine_tag()}", data, md, args.out)
    print(md)
    print(f"wrote {js} and {mdp}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
