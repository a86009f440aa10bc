"""What dlib's HOG detector proposes on the 1080p clips, and what it costs (the basis of
``pipeline.propose``, streamer/detect/proposals.py).

    python -m benchmarks proposals [--every 50] [--scales 1,1.5,2] [--seconds 20] [--out DIR]

On every ``--every``th frame of the four 1080p clips of ``small-faces`` (street and group, seeds
1 and 2; benchmarks/clips/catalog.py, made and cached as there), HOG scans the whole frame at
each scale with the proposer's threshold; per clip and scale: seconds per frame (one core),
proposals per frame, and how many truth faces (visible, >= 40 px) it proposed (IoU > 0.3), by
width 40-60, 60-80, 80+ px. Writes proposals-<machine>.json and .md.
"""

from __future__ import annotations

import time
from collections import Counter

import cv2

from benchmarks.clips.catalog import CACHE, SHARED, make_clip
from benchmarks.report import output_args, parser, progress, run_record, save
from streamer.detect.proposals import Proposer
from streamer.types import Region

CLIPS = [("street", 1), ("street", 2), ("group", 1), ("group", 2)]
SIZES = ("40-60", "60-80", "80+")


def size_class(w: int) -> str:
    return "40-60" if w < 60 else "60-80" if w < 80 else "80+"


def main(argv: list[str] | None = None) -> int:
    ap = parser("proposals", __doc__)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--scales", default="1,1.5,2")
    ap.add_argument("--seconds", type=float, default=20.0)
    output_args(ap, "proposals")
    args = ap.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    proposer = Proposer()
    rows = []
    for kind, seed in CLIPS:
        progress(f"{kind} seed {seed}: HOG at scales {args.scales} on every {args.every}th frame")
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
            rows.append(
                {
                    "clip": clip.name,
                    "scale": s,
                    "frames": frames,
                    "s_per_frame": secs[s] / max(1, frames),
                    "proposals_per_frame": props[s] / max(1, frames),
                    "proposed": {c: hit[s, c] for c in SIZES},
                    "truth_faces": {c: total[s, c] for c in SIZES},
                }
            )
    data = run_record("proposals", argv) | {"every": args.every, "seconds": args.seconds, "rows": rows}
    save(args, "proposals", data, markdown(data))
    return 0


def markdown(data: dict) -> str:
    lines = [
        f"# What HOG proposes on the 1080p clips (every {data['every']}th frame)",
        "",
        f"`{data['command']}`, {data['started_at']}, {data['machine']['cpu']} "
        f"({data['machine']['cores']} cores). Seconds per frame on one core; proposed: truth faces "
        "(visible, >= 40 px) with a proposal at IoU > 0.3, by face width.",
        "",
        "| clip | scale | s / frame | proposals / frame | proposed 40-60 | 60-80 | 80+ px |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        cells = [f"{r['proposed'][c]} of {r['truth_faces'][c]}" for c in SIZES]
        lines.append(
            f"| {r['clip']} | {r['scale']:g} | {r['s_per_frame']:.2f} | {r['proposals_per_frame']:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"
