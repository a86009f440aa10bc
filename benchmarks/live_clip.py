"""A real clip played live, scored against detection on every one of its frames.

    python -m benchmarks live-clip [--video CLIP] [--runs 3] [--out DIR] [--name STEM]

The clip (default: the demo, the Hamilton clip with three scene cuts) goes through
``streamer annotate --realtime`` (the live pipeline at the clip's own frame rate, config.toml's
defaults; detection as often as this machine allows, tracks in between) ``--runs`` times, each in
a child process. Reference: the detector (``pipeline.detector`` on the whole frame at
``detect_max_side``) on every frame, run once here. Per run: recall of the reference faces
(a drawn box with IoU >= 0.5, matched one to one), boxes drawn where the reference has no face
(IoU under 0.2 with all of its faces: a ghost, or a face the reference misses, which a look at
the frames tells apart), and the frames after each scene cut before every face of the new
scene has a box (``benchmarks.scoring.score_against_reference``). Live runs vary with the
machine's load: compare runs of one invocation. Writes live-clip-<machine>.json and .md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.clips.video import read_frames
from benchmarks.report import input_path, markdown_table, output_args, parser, progress, run_record, save
from benchmarks.scoring import score_against_reference
from streamer.types import Box

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "streamer" / "assets" / "demo.mp4"


def frames(video: Path) -> list[np.ndarray]:
    """Every frame of ``video``, RGB, decoded once for the reference and the cuts."""
    return read_frames(video)


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


def main(argv: list[str] | None = None) -> int:
    ap = parser("live-clip", __doc__)
    ap.add_argument("--video", type=input_path, default=DEMO)
    ap.add_argument("--runs", type=int, default=3)
    output_args(ap, "live-clip")
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
            runs.append(score_against_reference(lines, ref, scene_cuts))
            progress(f"run {k + 1}/{args.runs}: {json.dumps(runs[-1])}")
    result = run_record("live-clip", argv) | {
        "clip": str(args.video),
        "frames": len(ref),
        "scene_cuts": scene_cuts,
        "reference_faces": sum(len(r) for r in ref),
        "runs": runs,
    }
    save(args, "live-clip", result, markdown(result))
    return 0


def markdown(data: dict) -> str:
    rows = [
        {
            "run": k + 1,
            **r,
            "frames after each cut until all boxed": ", ".join(
                f"{c}: {v}" for c, v in r["frames_after_cut_until_all_boxed"].items()
            ),
        }
        for k, r in enumerate(data["runs"])
    ]
    cols = ("run", "recall_vs_every_frame", "boxes_drawn", "boxes_on_no_detected_face")
    return (
        f"# A real clip played live ({data['clip']})\n\n"
        f"`{data['command']}`, {data['started_at']}, {data['machine']['cpu']} "
        f"({data['machine']['cores']} cores), commit {data['machine']['git_commit']}. "
        f"{data['frames']} frames, {data['reference_faces']} faces found by detection on every frame "
        f"(the reference), scene cuts at frames {data['scene_cuts']}. Recall: a drawn box with IoU "
        ">= 0.5 on a reference face; boxes on no detected face: IoU under 0.2 with every one.\n\n"
        + markdown_table(rows, (*cols, "frames after each cut until all boxed"))
    )
