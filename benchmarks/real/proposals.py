"""What dlib's HOG detector proposes on the real clips, scanning colour or grey (the basis of
streamer/detect/proposals.py's ``grey_cut``).

    python -m benchmarks proposals-real [--frames 30] [--thresholds -0.5,-0.6] [--out DIR]

On about ``--frames`` reference frames of each real clip (benchmarks/real: the detector at full
resolution, cached under .cache/real), HOG scans the whole frame as a scene's first proposal look
does (``RegionPlanner.proposal_whole``, min_face_px 40), once on the RGB pixels (each pixel's
strongest gradient of three channels) and once on their grey, at each of ``--thresholds`` (dlib's
adjust_threshold; default ``PROPOSE_THRESHOLD``); per clip, mode and threshold: the reference
faces >= 40 px proposed (a proposal at IoU > 0.3), proposals made, and HOG's seconds (one core,
the grey conversion included). Writes proposals-real-<machine>.json and .md.
"""

from __future__ import annotations

import time

import cv2
import dlib
import numpy as np

from benchmarks.real.reference import ALL, reference
from benchmarks.report import output_args, parser, progress, run_record, save
from streamer.detect.proposals import PROPOSE_THRESHOLD, grey_cut, hog_scan
from streamer.detect.regions import cut
from streamer.pipeline.planner import RegionPlanner
from streamer.types import Box, Region

MODES = {"colour": cut, "grey": grey_cut}
MIN_FACE = 40


def proposed(hog, image: np.ndarray, regions: list[Region], mode: str, threshold: float) -> list[Box]:
    """HOG's proposals over ``regions`` of an RGB frame, scanning it in ``mode``, in frame pixels."""
    return [b for r in regions for b in hog_scan(hog, image, r, threshold, MODES[mode])]


def main(argv: list[str] | None = None) -> int:
    ap = parser("proposals-real", __doc__)
    ap.add_argument("--frames", type=int, default=30, help="reference frames per clip (about)")
    ap.add_argument(
        "--thresholds", default=str(PROPOSE_THRESHOLD), help="HOG's adjust_threshold, comma-separated"
    )
    output_args(ap, "proposals-real")
    args = ap.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    kinds = [(m, t) for t in thresholds for m in MODES]
    hog = dlib.get_frontal_face_detector()
    rows = []
    for name, clip in ALL.items():
        ref = reference(clip, log=progress)
        frames = sorted(ref)[:: max(1, len(ref) // args.frames)]
        progress(f"{name}: {len(frames)} reference frames")
        got = {k: {"faces": 0, "proposed": 0, "proposals": 0, "hog_s": 0.0} for k in kinds}
        cap = cv2.VideoCapture(str(clip.path))
        want, n = set(frames), -1
        while want:
            ok, bgr = cap.read()
            n += 1
            if not ok:
                break
            if n not in want:
                continue
            want.discard(n)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            regions = RegionPlanner(MIN_FACE).proposal_whole(w, h)
            faces = [b for b in ref[n] if max(b.width, b.height) >= MIN_FACE]
            for (m, t), g in got.items():
                t0 = time.perf_counter()
                props = proposed(hog, rgb, regions, m, t)
                g["hog_s"] += time.perf_counter() - t0
                g["faces"] += len(faces)
                g["proposed"] += sum(any(f.iou(p) > 0.3 for p in props) for f in faces)
                g["proposals"] += len(props)
        cap.release()
        rows += [
            {"clip": name, "mode": m, "threshold": t, "frames": len(frames), **g} for (m, t), g in got.items()
        ]
    for m, t in kinds:
        mine = [r for r in rows if (r["mode"], r["threshold"]) == (m, t)]
        keys = ("frames", "faces", "proposed", "proposals", "hog_s")
        total = {k: sum(r[k] for r in mine) for k in keys}
        rows.append({"clip": "total", "mode": m, "threshold": t, **total})
    data = run_record("proposals-real", argv) | {"thresholds": thresholds, "rows": rows}
    save(args, "proposals-real", data, markdown(data))
    return 0


def markdown(data: dict) -> str:
    lines = [
        "# What HOG proposes on the real clips, colour or grey",
        "",
        f"`{data['command']}`, {data['started_at']}, {data['machine']['cpu']} "
        f"({data['machine']['cores']} cores). The whole frame as a "
        "scene's first proposal look scans it; proposed: reference faces >= 40 px with a proposal "
        "at IoU > 0.3; HOG seconds on one core, the grey conversion included.",
        "",
        "| clip | mode | threshold | frames | faces | proposed | share | proposals | HOG s / frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        share = r["proposed"] / r["faces"] if r["faces"] else float("nan")
        lines.append(
            f"| {r['clip']} | {r['mode']} | {r['threshold']:g} | {r['frames']} | {r['faces']} | "
            f"{r['proposed']} | "
            f"{share:.3f} | {r['proposals']} | {r['hog_s'] / max(1, r['frames']):.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
