"""Our tracker against Norfair (IoU distance, Kalman prediction) on the moving-camera clip.

    pip install --target /tmp/nf norfair && NORFAIR_PATH=/tmp/nf python -m benchmarks.tracking_vs_norfair

Norfair is not a dependency: this only backs the choice of tracker with a figure. Both get the same
detections (the detector on every Nth frame); recall and mean IoU against detection on every frame.
"""

from __future__ import annotations

import os
import sys
import time

import aiortc  # noqa: F401  (before TensorFlow)
import numpy as np

from benchmarks.moving_camera import CameraPath, frames, load_still
from benchmarks.tracking import ROOT, SHARED, compare
from streamer.annotate import build_engine
from streamer.config import load_config
from streamer.pipeline.tracking import FaceStage
from streamer.types import Box, Detections, Frame


def main() -> int:
    sys.path.append(os.environ.get("NORFAIR_PATH", "/tmp/nf"))  # after the venv's own packages
    from norfair import Detection, Tracker

    images = list(frames(load_still(SHARED), CameraPath()))
    engine = build_engine(load_config(ROOT / "config.toml"))
    ref = [engine.run([im])[0][0].faces for im in images]
    tot = sum(len(r) for r in ref)
    for every in (6, 15):
        nf = Tracker(
            distance_function="iou", distance_threshold=0.7, hit_counter_max=2 * every, initialization_delay=0
        )
        stage = FaceStage("b", every)
        score = {"norfair": [0, 0.0, 0.0], "ours": [0, 0.0, 0.0]}
        for n, img in enumerate(images):
            t0 = time.perf_counter()
            if n % every == 0:
                dets = [
                    Detection(np.array([[f.box.left, f.box.top], [f.box.right, f.box.bottom]], float))
                    for f in ref[n]
                ]
                objs = nf.update(dets, period=every)
            else:
                objs = nf.update()
            t1 = time.perf_counter()
            got_nf = [Box(*(int(v) for v in o.estimate.reshape(-1)), 1.0) for o in objs]
            fr = Frame("b", n, img, n / 30)
            t2 = time.perf_counter()
            if stage.due(n):
                stage.on_detections(Detections("b", n, fr.captured_at, ref[n]))
            got_us = [f.box for f in stage.process(fr, draw=False).faces]
            t3 = time.perf_counter()
            for name, got, dt in (("norfair", got_nf, t1 - t0), ("ours", got_us, t3 - t2)):
                k, s, _ = compare([f.box for f in ref[n]], got)
                score[name][0] += k
                score[name][1] += s
                score[name][2] += dt
        for name, (k, s, dt) in score.items():
            print(
                f"every {every:2d} {name:8s} recall {k / tot:.3f} mean IoU {s / tot:.3f} "
                f"{1000 * dt / len(images):.2f} ms/frame"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
