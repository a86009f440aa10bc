"""A real clip played live, scored against detection on every one of its frames.

    python -m benchmarks.live_clip [--video CLIP] [--runs 3] [--out FILE.json]

The clip (default: the demo, the Hamilton clip with three scene cuts) goes through
``streamer annotate --realtime`` (the live pipeline at the clip's own frame rate, config.toml's
defaults; detection as often as this machine allows, tracks in between) ``--runs`` times, each in
a child process. Reference: the detector (``pipeline.detector`` on the whole frame at
``detect_max_side``) on every frame, run once here. Per run: recall of the reference faces
(a drawn box with IoU >= 0.5, matched one to one), boxes drawn where the reference has no face
(IoU under 0.2 with all of its faces: a ghost, or a face the reference misses, which a look at
the frames tells apart), and the frames after each scene cut before every face of the new
scene has a box. Live runs vary with the machine's load: compare runs of one invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.box_accuracy import compare
from benchmarks.tracking import read_video
from streamer.track.matching import iou_matrix
from streamer.types import Box

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "streamer" / "assets" / "demo.mp4"


def frames(video: Path) -> list[np.ndarray]:
    """Every frame of ``video``, RGB, decoded once for the reference and the cuts."""
    return read_video(video, 10**9)


def reference(images: list[np.ndarray]) -> list[list[Box]]:
    """The detector's faces on every frame (whole frame, config.toml's settings)."""
    from streamer.annotate import build_engine
    from streamer.config import load_config

    engine = build_engine(load_config(ROOT / "config.toml"))
    return [engine.detect([im], [()], [0])[0] for im in images]


def cuts(images: list[np.ndarray]) -> list[int]:
    """Frames where the scene changes (as the tracker tells them), for the after-cut delay."""
    from streamer.track.tracker import Tracker

    tr, found = Tracker(), []
    for n, im in enumerate(images):
        tr.follow(im, n, n / 30)
        if tr.cut:
            found.append(n)
            tr.cut = False
    return found


def score(lines: list[dict], ref: list[list[Box]], scene_cuts: list[int]) -> dict[str, object]:
    found = total = ghosts = drawn = 0
    boxed_from: dict[int, int | None] = {c: None for c in scene_cuts}
    for d in lines:
        n = d["frame"]
        if n >= len(ref):
            continue
        got = [Box(f["left"], f["top"], f["right"], f["bottom"], f["confidence"]) for f in d["faces"]]
        k, _, _ = compare(ref[n], got)
        found += k
        total += len(ref[n])
        drawn += len(got)
        if got:
            m = iou_matrix(
                [(b.left, b.top, b.right, b.bottom) for b in got],
                [(b.left, b.top, b.right, b.bottom) for b in ref[n]],
            )
            ghosts += int((m.max(axis=1) < 0.2).sum()) if ref[n] else len(got)
        for c in scene_cuts:
            if boxed_from[c] is None and n >= c and ref[n] and k == len(ref[n]):
                boxed_from[c] = n
    return {
        "recall_vs_every_frame": round(found / max(1, total), 4),
        "boxes_drawn": drawn,
        "boxes_on_no_detected_face": ghosts,
        "frames_after_cut_until_all_boxed": {
            str(c): (b - c if b is not None else None) for c, b in boxed_from.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.live_clip", description=__doc__)
    ap.add_argument("--video", type=Path, default=DEMO)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    images = frames(args.video)
    ref = reference(images)
    scene_cuts = cuts(images)
    del images
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            jsonl = Path(tmp) / f"run{k}.jsonl"
            cmd = [sys.executable, "-m", "streamer", "annotate", str(args.video), "--config",
                   str(ROOT / "config.toml"), "--realtime", "--output", str(Path(tmp) / f"run{k}.mp4"),
                   "--detections", str(jsonl)]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
            runs.append(score(lines, ref, scene_cuts))
            print(json.dumps(runs[-1]), file=sys.stderr)
    result = {
        "clip": str(args.video),
        "frames": len(ref),
        "scene_cuts": scene_cuts,
        "reference_faces": sum(len(r) for r in ref),
        "runs": runs,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
