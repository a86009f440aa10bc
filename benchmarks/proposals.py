"""What dlib's HOG detector proposes on the 1080p clips, and what it costs (the basis of
``pipeline.propose``, streamer/detect/proposals.py).

    python -m benchmarks.proposals [--every 50] [--scales 1,1.5,2] [--seconds 20]

On every ``--every``th frame of the four 1080p clips of ``benchmarks.small_faces`` (street and
group, seeds 1 and 2; made and cached as there), HOG scans the whole frame at each scale with
the proposer's threshold; per clip and scale: seconds per frame (one core), proposals per frame,
and how many truth faces (visible) it proposed (IoU > 0.3), by width 40-60, 60-80, 80+ px.
Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import cv2

from benchmarks.street_clip import CACHE, SHARED, make_clip
from streamer.detect.proposals import Proposer
from streamer.types import Region

CLIPS = [("street", 1), ("street", 2), ("group", 1), ("group", 2)]


def size_class(w: int) -> str:
    return "40-60" if w < 60 else "60-80" if w < 80 else "80+"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.proposals", description=__doc__)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--scales", default="1,1.5,2")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    proposer = Proposer()
    print("| clip | scale | s / frame | proposals / frame | proposed 40-60 | 60-80 | 80+ px |")
    print("|---|---|---|---|---|---|---|")
    for kind, seed in CLIPS:
        clip = make_clip(kind, seed, args.seconds, CACHE, SHARED)
        cap = cv2.VideoCapture(str(clip.path))
        secs: Counter[float] = Counter()
        props: Counter[float] = Counter()
        total: Counter[tuple[float, str]] = Counter()
        hit: Counter[tuple[float, str]] = Counter()
        frames = 0
        for n in range(len(clip.truth)):
            ok, bgr = cap.read()
            if not ok:
                break
            if n % args.every != args.every // 2:
                continue
            frames += 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            truth = [t.box for t in clip.scored(n)]
            for s in scales:
                t0 = time.perf_counter()
                boxes = proposer.propose(rgb, Region(0, 0, w - 1, h - 1, s, "propose"))
                secs[s] += time.perf_counter() - t0
                props[s] += len(boxes)
                for t in truth:
                    k = (s, size_class(t.width))
                    total[k] += 1
                    hit[k] += any(t.iou(b) > 0.3 for b in boxes)
        cap.release()
        for s in scales:
            cells = [f"{hit[s, c]} of {total[s, c]}" for c in ("40-60", "60-80", "80+")]
            print(
                f"| {clip.name} | {s:g} | {secs[s] / max(1, frames):.2f} | {props[s] / max(1, frames):.1f} | "
                + " | ".join(cells)
                + " |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
