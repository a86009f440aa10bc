"""The whole service, in parts: one JSON + Markdown + PNG plots per run (bench-<machine>.*).

    python -m benchmarks service [--quick] [--parts baseline,stages,sweeps,webrtc,classifier]
                                 [--detector dlib|mmod] [--out DIR] [--seconds S] [--max-streams N]
                                 [--stream-counts 1,8,16] [--sweeps streams,max_batch,resolution,detector]

Parts: baseline (sequential loop vs service), stages (ms per frame per stage),
sweeps (concurrent streams of a moving-camera clip with box recall and mean IoU against
its true boxes, max batch, resolution, detector), webrtc (end-to-end
latency through a real aiortc peer), classifier (faces/s per batch size); and, only when
named, live (the service alone on --video with --streams copies: one measuring window) and
rates (one stream's detections a second with the defaults, without the classifiers, without
HOG's proposals, without either; two windows each, in turn).
Progress goes to stderr; the Markdown summary to stdout.

GPU machine (the goal: 16+ concurrent 30 fps 640x480 streams, p95 <= 100 ms):

    KERAS_BACKEND=jax python -m benchmarks service --detector mmod --resolution 640x480 \
        --latency-limit 0.1 --max-streams 64 --max-batch 16
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# aiortc (pylibsrtp) first: importing it after TensorFlow or dlib are loaded segfaults.
import aiortc  # noqa: F401

from benchmarks.machine import machine_info, machine_tag
from benchmarks.report import RESULTS, command, input_path, parser, progress, results_dir, write
from benchmarks.service.options import Options, detector_available, quiet_tf
from benchmarks.service.summary import markdown

PARTS = ("classifier", "stages", "baseline", "webrtc", "sweeps")  # the default run, in this order
ONLY_NAMED = ("live", "rates")  # parts that run only when --parts names them


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = parser("service", __doc__)
    ap.add_argument("--quick", action="store_true", help="short runs and fewer sweep points (under 2 min)")
    ap.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS + ONLY_NAMED)}"
    )
    ap.add_argument("--detector", choices=["dlib", "mmod"], default="mmod", help="default: the service's")
    ap.add_argument("--video", type=input_path, default=None, help="default: the bundled demo clip")
    ap.add_argument(
        "--resolution", default=None, help="scale the video first: 240p..1080p or WxH (e.g. 640x480)"
    )
    ap.add_argument(
        "--out", type=results_dir, default=RESULTS, help="results folder (default benchmarks/results)"
    )
    ap.add_argument("--seconds", type=float, default=None, help="measuring window of each live run")
    ap.add_argument("--warmup", type=float, default=None, help="settle time before each live measurement")
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="inference worker processes")
    ap.add_argument(
        "--worker-nice", type=int, default=10, help="workers' CPU niceness (pipeline.worker_nice; 0 = same)"
    )
    ap.add_argument(
        "--strategy",
        choices=["regions", "whole"],
        default="regions",
        help="pipeline.strategy (default: the service's)",
    )
    ap.add_argument(
        "--sync-output",
        choices=["off", "on", "auto"],
        default="off",
        help="pipeline.sync_output (default off: the latency measured is the service's, not a chosen hold)",
    )
    ap.add_argument("--streams", type=int, default=1, help="the live part: copies of --video at once")
    ap.add_argument("--max-streams", type=int, default=32, help="stop the streams sweep here")
    ap.add_argument(
        "--stream-counts",
        default=None,
        help="the streams sweep's levels, e.g. 1,8,16 (default 1, 2, 4, ... up to --max-streams)",
    )
    ap.add_argument(
        "--sweeps", default="streams,max_batch,resolution,detector", help="which sweeps (comma-separated)"
    )
    ap.add_argument("--latency-limit", type=float, default=0.15, help="p95 (s) for 'keeps real time'")
    ap.add_argument("--stage-frames", type=int, default=None, help="frames for the stage breakdown")
    ap.add_argument("--name", default=None, help="results file stem (default bench-<machine>[-quick])")
    ap.add_argument("--no-plots", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    quiet_tf()
    logging.basicConfig(level=logging.ERROR)
    chosen = [s.strip() for s in args.parts.split(",") if s.strip()]
    bad = [s for s in chosen if s not in PARTS + ONLY_NAMED]
    if bad:
        print(f"unknown part(s) {bad}; choose from {', '.join(PARTS + ONLY_NAMED)}", file=sys.stderr)
        return 2
    why = detector_available(args.detector)
    if why:
        print(f"detector {args.detector} is not available: {why}", file=sys.stderr)
        return 2
    opts = Options(
        quick=args.quick,
        detector=args.detector,
        max_batch=args.max_batch,
        workers=args.workers,
        worker_nice=args.worker_nice,
        strategy=args.strategy,
        sync_output=args.sync_output,
        max_streams=args.max_streams,
        stream_counts=tuple(int(x) for x in args.stream_counts.split(",")) if args.stream_counts else (),
        sweeps=tuple(x.strip() for x in args.sweeps.split(",") if x.strip()),
    )
    if args.video:
        opts.video = args.video
    if args.resolution:
        from benchmarks.clips.video import scaled_video

        progress(f"scaling {opts.video.name} to {args.resolution}")
        opts.video = scaled_video(opts.video, args.resolution, opts.work, max_frames=300)
    opts.seconds = args.seconds or (4.0 if args.quick else 15.0)
    opts.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    tag = machine_tag()
    name = args.name or f"bench-{tag}{'-quick' if args.quick else ''}"
    data: dict[str, Any] = {
        "benchmark": "streamer",
        "command": command("service", argv),
        "quick": args.quick,
        "options": {
            "detector": opts.detector,
            "video": opts.video.name,
            "max_batch": opts.max_batch,
            "workers": opts.workers,
            "worker_nice": opts.worker_nice,
            "seconds": opts.seconds,
            "warmup": opts.warmup,
            "streams": args.streams,
            "max_streams": opts.max_streams,
            "stream_counts": list(opts.stream_counts),
            "sweeps": list(opts.sweeps),
            "latency_limit_s": args.latency_limit,
        },
        "machine": machine_info(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "notes": opts.notes,
        "scenarios": {},  # each part's figures, by part
        "errors": {},
    }
    t0 = time.monotonic()
    for s in [s for s in PARTS + ONLY_NAMED if s in chosen]:
        progress(f"=== part {s} ===")
        try:
            data["scenarios"][s] = run_one(s, opts, args)
        except Exception as e:  # one broken scenario must not lose the others
            traceback.print_exc()
            data["errors"][s] = f"{type(e).__name__}: {e}"
    data["duration_s"] = round(time.monotonic() - t0, 1)
    data["plots"] = [] if args.no_plots else make_plots(data, args.out, name, tag)
    md = markdown(data, tag)
    js, mdp = write(name, data, md, args.out)
    print(md)
    progress(f"wrote {js}, {mdp} and {len(data['plots'])} plots in {data['duration_s']:.0f} s")
    return 1 if data["errors"] else 0


def run_one(s: str, opts: Options, args: argparse.Namespace) -> dict[str, Any]:
    if s == "classifier":
        from benchmarks.service import classifier

        return classifier.run(opts)
    if s == "stages":
        from benchmarks.service import stages

        return stages.run(opts, args.stage_frames)
    if s == "baseline":
        from benchmarks.service import baseline

        return baseline.run(opts)
    if s == "webrtc":
        from benchmarks.service import webrtc

        return webrtc.run(opts)
    if s == "live":
        from benchmarks.service import harness

        return asyncio.run(harness.run_options(opts, args.streams))
    if s == "rates":
        from benchmarks.service import rates

        return rates.run(opts)
    from benchmarks.service import sweeps

    return sweeps.run(opts, args.latency_limit)


def make_plots(data: dict[str, Any], out: Path, name: str, tag: str) -> list[str]:
    from benchmarks.service import plots

    out.mkdir(parents=True, exist_ok=True)
    sc, made = data["scenarios"], []
    title = f"{tag}, {data['options']['detector']}, {data['machine']['cpu']}"
    if "sweeps" in sc and sc["sweeps"].get("streams"):
        made.append(plots.fps_vs_streams(sc["sweeps"], out / f"{name}-streams.png", title))
    series: dict[str, list[float]] = {}
    if "baseline" in sc:
        series["sequential loop: capture to shown"] = sc["baseline"]["baseline"]["latency_samples"]
        if sc["baseline"].get("tutorial"):
            series["tutorial's loop (dlib-bin): capture to shown"] = sc["baseline"]["tutorial"][
                "latency_samples"
            ]
        series["service, MJPEG: capture to receive"] = sc["baseline"]["service"]["latency_samples"]
        series["service: age of the boxes drawn"] = sc["baseline"]["service"]["detection_age_samples"]
    if "webrtc" in sc:
        series["service, WebRTC: send to receive (e2e)"] = sc["webrtc"]["e2e_latency_samples"]
    if series:
        made.append(plots.latency_cdf(series, out / f"{name}-latency-cdf.png", title))
    if "stages" in sc:
        made.append(plots.stage_breakdown(sc["stages"], out / f"{name}-stages.png", title))
    return [p.name for p in made]


if __name__ == "__main__":
    sys.exit(main())
