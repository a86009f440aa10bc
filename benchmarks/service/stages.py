"""Service part ``stages``: where the time goes per frame: decode, detect, classify, overlay, encode.

Each stage run in-process, one frame at a time, on consecutive frames of the video
(so ms per frame here is the cost on one core-share, not the service's throughput).
"""

from __future__ import annotations

import time
from typing import Any

import cv2

from benchmarks.report import progress
from benchmarks.service.options import Options, classifier_configs
from streamer.config import load_config
from streamer.inference.engine import Engine, EngineSpec
from streamer.outputs.mjpeg import encode_jpeg
from streamer.overlay import draw_faces

STAGES = ("decode", "detect", "classify", "overlay", "encode")


def run(opts: Options, frames: int | None = None) -> dict[str, Any]:
    n = frames or (2 if opts.quick else 20)
    p = load_config(None, environ={}).pipeline
    engine = Engine(EngineSpec(opts.detector, p.upsample, p.detect_max_side, tuple(classifier_configs(opts))))
    cap = cv2.VideoCapture(str(opts.video))
    for _ in range(150):  # a stretch of the clip with faces
        cap.grab()
    ok, bgr = cap.read()
    engine.run([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])  # warm-up
    tot = dict.fromkeys(STAGES, 0.0)
    faces = 0
    done = 0
    for i in range(n):
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = cap.read()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        results, timings = engine.run([rgb])
        t2 = time.perf_counter()
        img = draw_faces(rgb, results[0].faces)
        t3 = time.perf_counter()
        encode_jpeg(img, 80)
        t4 = time.perf_counter()
        tot["decode"] += t1 - t0
        tot["detect"] += timings.detect_s
        tot["classify"] += timings.classify_s
        tot["overlay"] += t3 - t2
        tot["encode"] += t4 - t3
        faces += timings.n_faces
        done += 1
        progress(f"stages: frame {i + 1}/{n}", end="\r")
    progress(f"stages: {done} frames, {faces} faces")
    total = sum(tot.values())
    return {
        "frames": done,
        "faces_per_frame": round(faces / done, 2),
        "resolution": f"{rgb.shape[1]}x{rgb.shape[0]}",
        "ms_per_frame": {k: round(1000 * v / done, 3) for k, v in tot.items()},
        "share": {k: round(v / total, 4) for k, v in tot.items()},
        "total_ms_per_frame": round(1000 * total / done, 2),
    }
