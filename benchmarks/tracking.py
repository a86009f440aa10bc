"""Tracking scenario: boxes and labels with detection every N frames, against detection on every frame.

    python -m benchmarks tracking [--video PATH] [--frames N] [--every 1,3,6,15] [--latency FRAMES]
                                  [--phases] [--loops N] [--out DIR] [--name STEM]

Default clip: the moving camera over a still with many faces (clips/moving_camera.py), where each face's
true box is known. The detector (and config.toml's classifiers) runs once on every frame; that is
the reference. For each N the face stage (the one live streams and `annotate` use) then sees the
reference detections on every Nth frame only, as the service would, and tracks in between;
``--latency L`` hands each detection over L frames after the frame it was taken from, as a live
stream gets it; ``--phases`` also runs each N once per phase (the clip started at each of its
first N frames, so the detector sees other frames) and adds the mean and worst; ``--loops K``
plays the clip K times in a row, as the service loops its demo (faces come back: tracks resumed;
the tracker's rule is config.toml's, so ``STREAMER_PIPELINE_REIDENTIFY_S=0`` runs it without).
Per N: recall
and mean IoU of the drawn boxes against the reference (Hungarian match, IoU >= 0.5 counts as
found; mean IoU over all reference faces, 0 where missed), the same
against the true boxes (moving camera only), track ids per person, shown-label changes per person,
shown-label changes per person had each detection's labels been drawn (before tracking), faces
classified vs detected, and CPU per stream at 30 fps (detection share + tracking). Also the
tracker's own cost in ms per frame at 1, 8 and 32 faces, and the camera-motion estimate's
(revealed.py) on the clip and on it scaled to 1080p. Writes tracking-moving-camera-<machine> (or
tracking-<video's name>-<machine>) .json and .md.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict, deque
from pathlib import Path

import aiortc  # noqa: F401  (before TensorFlow: pylibsrtp segfaults otherwise)
import cv2
import numpy as np

from benchmarks.clips.moving_camera import SHARED, CameraPath, frames, load_still
from benchmarks.clips.moving_camera import people as people_on
from benchmarks.clips.video import read_frames
from benchmarks.report import input_path, markdown_table, output_args, parser, progress, run_record, save
from benchmarks.scoring import compare
from streamer.annotate import build_engine
from streamer.config import load_config
from streamer.inference.engine import Engine, _overlaps
from streamer.pipeline.revealed import Revealed
from streamer.pipeline.tracking import BetweenLooks, FaceStage, between_for, rule_for
from streamer.track.tracker import Tracker, TrackerRule
from streamer.types import Box, Detections, Face, Frame

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0


def run_every(
    images,
    ref_faces,
    every: int,
    people=None,
    latency: int = 0,
    rule: TrackerRule | None = None,
    between: BetweenLooks | None = None,
    engine: Engine | None = None,
) -> dict[str, object]:
    """``latency``: frames between the frame sent to the detector and the frame its answer reaches
    the stage (0: the same frame; live, detection takes ~3 frames on a quiet 2-core CPU, more
    with several streams). ``between``: the stage's looks between rounds, detected by ``engine``
    on the regions the stage asks for (a round gets the reference's whole-frame faces)."""
    stage = FaceStage("bench", every, rule=rule, between=between)
    why: dict[str, int] = defaultdict(int)  # regions looked at between rounds, by why
    h, w = images[0].shape[:2]
    s = (between or BetweenLooks()).scale(w, h)
    whole_px = round(w * s) * round(h * s)  # detector pixels of a whole-frame look
    looked_px = 0.0  # ... and of all the looks made
    in_flight: deque[tuple[int, Detections]] = deque()
    found = found_t = n_ref = n_true = 0
    iou_sum = iou_sum_t = 0.0
    ids: dict[int, set[int]] = defaultdict(set)
    shown: dict[int, list[str]] = defaultdict(list)
    raw: dict[int, list[str]] = defaultdict(list)  # labels as each detection gave them (before tracking)
    detected = classified = 0
    track_s = 0.0
    for n, img in enumerate(images):
        frame = Frame("bench", n, img, n / FPS)
        due = stage.due(n)
        t0 = time.perf_counter()
        regions = stage.prepare(frame, plan=due)  # plan: keep the frame the detector saw
        track_s += time.perf_counter() - t0
        if due and regions:  # a look between rounds: the detector on what the stage asks for
            assert engine is not None
            (res,), _ = engine.run([img], [stage.skip_boxes()], [regions])
            looked_px += sum(r.pixels for r in regions)
            detected += sum(1 for f in res.faces if not f.box.weak)  # (faces; weak detections aside)
            classified += sum(1 for f in res.faces if f.labels)
            for r in regions:
                why[r.why] += 1
            in_flight.append((n + latency, Detections("bench", n, frame.captured_at, res.faces, regions)))
        elif due:
            looked_px += whole_px
            if people is not None:
                strong = [f for f in ref_faces[n] if not f.box.weak]  # (weak detections: unlabelled)
                _, _, pairs = compare([b for _, b in people[n]], [f.box for f in strong])
                for i, j in pairs:
                    raw[people[n][i][0]].append(",".join(x.label for x in strong[j].labels))
            skip = stage.skip_boxes()
            faces = tuple(
                Face(f.box) if _overlaps(f.box, skip) else f for f in ref_faces[n]
            )  # what Engine.run(.., skip) returns
            detected += sum(1 for f in faces if not f.box.weak)
            classified += sum(1 for f in faces if f.labels)
            in_flight.append((n + latency, Detections("bench", n, frame.captured_at, faces)))
        while in_flight and in_flight[0][0] <= n:
            stage.on_detections(in_flight.popleft()[1])
        t0 = time.perf_counter()
        out = stage.finish(frame, draw=False)
        track_s += time.perf_counter() - t0
        got = [f.box for f in out.faces]
        faces_n = [f.box for f in ref_faces[n] if not f.box.weak]  # (weak detections: no reference)
        k, s, _ = compare(faces_n, got)
        found += k
        iou_sum += s
        n_ref += len(faces_n)
        if people is not None:
            true = people[n]
            k, s, pairs = compare([b for _, b in true], got)
            found_t += k
            iou_sum_t += s
            n_true += len(true)
            for i, j in pairs:
                person = true[i][0]
                f = out.faces[j]
                ids[person].add(f.track)  # type: ignore[arg-type]
                lab = ",".join(x.label for x in f.labels)
                if lab and "?" not in lab:
                    shown[person].append(lab)
    changes = [sum(1 for a, b in itertools.pairwise(v) if a != b) for v in shown.values()]
    raw_changes = [sum(1 for a, b in itertools.pairwise(v) if a != b) for v in raw.values()]
    r: dict[str, object] = {
        "every": every,
        "latency_frames": latency,
        "recall_vs_every_frame": round(found / max(1, n_ref), 4),
        "mean_iou_vs_every_frame": round(iou_sum / max(1, n_ref), 4),
        "looks_between_rounds": stage.looks_between,
        "regions_between_rounds": dict(why),
        # what the detector looked at per frame, in whole frames (at every Nth and no looks between: 1/N)
        "detector_frames_per_frame": round(looked_px / max(1.0, whole_px) / len(images), 4),
        "tracks_started": stage.tracker.started,
        "tracks_resumed": stage.tracker.resumed,
        "faces_detected": detected,
        "faces_classified": classified,
        "track_ms_per_frame": round(1000 * track_s / len(images), 2),
    }
    if people is not None:
        r |= {
            "recall_vs_truth": round(found_t / max(1, n_true), 4),
            "mean_iou_vs_truth": round(iou_sum_t / max(1, n_true), 4),
            "people": len(ids),
            "ids_per_person": round(sum(len(v) for v in ids.values()) / max(1, len(ids)), 3),
            "label_changes_per_person_max": max(changes, default=0),
            "label_changes_per_person_mean": round(sum(changes) / max(1, len(changes)), 3),
            "per_detection_label_changes_per_person_max": max(raw_changes, default=0),
            "per_detection_label_changes_per_person_mean": round(
                sum(raw_changes) / max(1, len(raw_changes)), 3
            ),
        }
    return r


PHASED = (
    "detector_frames_per_frame",
    "recall_vs_every_frame",
    "mean_iou_vs_every_frame",
    "recall_vs_truth",
    "mean_iou_vs_truth",
)


def over_phases(images, ref_faces, every: int, people=None, latency: int = 0, **kw) -> dict[str, object]:
    """``run_every`` with the clip started at each of its first ``every`` frames: which frames the
    detector sees decides which faces come into view just after one (phase 0 alone is one draw of
    that: on the moving camera at every 15th, recall 0.922 against a mean of 0.901 over the 15
    phases, the worst 0.865). Mean and worst
    of each recall and IoU, and the most track ids and label changes per person of any phase."""
    runs = [
        run_every(images[k:], ref_faces[k:], every, people[k:] if people is not None else None, latency, **kw)
        for k in range(every)
    ]
    out: dict[str, object] = {"phases": every}
    for key in PHASED:
        if key in runs[0]:
            v = [float(r[key]) for r in runs]  # type: ignore[arg-type]
            out[f"{key}_mean"] = round(float(np.mean(v)), 4)
            out[f"{key}_min"] = round(min(v), 4)
    for key in ("ids_per_person", "label_changes_per_person_max"):
        if key in runs[0]:
            out[f"{key}_max"] = max(r[key] for r in runs)  # type: ignore[type-var]
    return out


def revealed_cost(images: list[np.ndarray], size: tuple[int, int] | None = None) -> float:
    """ms per frame of estimating the camera's motion and the new picture (revealed.py: what the
    looks between rounds cost on every frame), on ``images`` scaled to ``size`` (w, h)."""
    greys = [cv2.cvtColor(im if size is None else cv2.resize(im, size), cv2.COLOR_RGB2GRAY) for im in images]
    rv = Revealed()
    t0 = time.perf_counter()
    for g in greys:
        rv.update(g, (g.shape[1], g.shape[0]))
        rv.unseen(8)
    return 1000 * (time.perf_counter() - t0) / len(greys)


def tracker_cost(still: np.ndarray, n_faces: int, n_frames: int = 60) -> float:
    """ms per frame of Tracker.follow with ``n_faces`` tracks on a panning 640x480 view."""
    path = CameraPath(frames=n_frames, view_w=(1100.0, 900.0))
    imgs = list(frames(still, path))
    cols = int(np.ceil(np.sqrt(n_faces * 4 / 3)))
    rows = int(np.ceil(n_faces / cols))
    w, h = 640 // cols, 480 // rows
    side = min(w, h, 100) - 8
    boxes = [
        Face(Box(c * w + 4, r * h + 4, c * w + 4 + side, r * h + 4 + side, 1.0))
        for r in range(rows)
        for c in range(cols)
    ][:n_faces]
    tr = Tracker()
    tr.follow(imgs[0], 0, 0.0)
    tr.update(boxes, 0, 0.0)
    t0 = time.perf_counter()
    for n, im in enumerate(imgs[1:], 1):
        if len(tr.tracks) < n_faces:  # boxes panned out of view: put them back, keep the count
            tr.tracks = []
            tr.update(boxes, n - 1, n / FPS)
        tr.follow(im, n, n / FPS)
    return 1000 * (time.perf_counter() - t0) / (len(imgs) - 1)


def main(argv: list[str] | None = None) -> int:
    ap = parser("tracking", __doc__)
    ap.add_argument("--video", type=input_path, default=None, help="a real clip instead of the moving camera")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--every", default="1,3,6,15")
    ap.add_argument(
        "--latency", type=int, default=0, help="frames from capture to a detection's arrival (live: 3+)"
    )
    ap.add_argument(
        "--phases",
        action="store_true",
        help="also run every detection phase (the clip started at each of its first N frames) "
        "and report the mean and worst",
    )
    ap.add_argument(
        "--loops",
        type=int,
        default=1,
        help="play the clip this many times in a row (the service loops its demo)",
    )
    output_args(ap, "tracking-moving-camera (or tracking-<video's name>)")
    args = ap.parse_args(argv)
    cfg = load_config(ROOT / "config.toml")
    engine = build_engine(cfg)
    rule = rule_for(cfg.pipeline)
    between = between_for(cfg.pipeline)
    still = load_still(SHARED)
    people = None
    if args.video is None:
        path = CameraPath(frames=args.frames)
        images = list(frames(still, path))
        on_still = [b for b in engine.detector.detect([still], 0)[0] if not b.weak]
        people = [people_on(on_still, (still.shape[1], still.shape[0]), path, n) for n in range(len(images))]
        clip = f"moving camera over {len(on_still)} faces, {path.size[0]}x{path.size[1]}"
    else:
        images = read_frames(args.video, args.frames)
        clip = str(args.video)
    t0 = time.perf_counter()
    ref = []
    for im in images:
        (res,), _ = engine.run([im])
        ref.append(res.faces)
    detect_ms = 1000 * (time.perf_counter() - t0) / len(images)
    progress(f"{clip}: {len(images)} frames, detect+classify {detect_ms:.0f} ms/frame")
    if args.loops > 1:  # (the reference is the same every time round)
        images, ref = images * args.loops, ref * args.loops
        people = people * args.loops if people is not None else None
        clip += f", {args.loops} times in a row"
    results = []
    for every in (int(x) for x in args.every.split(",")):
        kw = {"rule": rule, "between": between, "engine": engine}
        r = run_every(images, ref, every, people, args.latency, **kw)
        r["cpu_per_stream_at_30fps"] = round(
            30 * (detect_ms * float(r["detector_frames_per_frame"]) + float(r["track_ms_per_frame"])) / 1000,
            3,
        )  # cores busy: detection (by the pixels looked at) + tracking
        if args.phases:
            r["over_phases"] = over_phases(images, ref, every, people, args.latency, **kw)
        results.append(r)
        progress(json.dumps(r))
    cost = {n: round(tracker_cost(still, n), 2) for n in (1, 8, 32)}
    progress(f"tracker ms/frame by faces: {cost}")
    out = run_record("tracking", argv) | {
        "clip": clip,
        "frames": len(images),
        "detect_ms_per_frame": round(detect_ms, 1),
        "runs": results,
    }
    out["tracker_ms_per_frame_by_faces"] = cost
    # the looks between rounds estimate the camera's motion on every frame (with detect_every > 1)
    clip_frames = images[: min(len(images), 120)]
    out["revealed_ms_per_frame"] = {
        "clip": round(revealed_cost(clip_frames), 2),
        "1080p": round(revealed_cost(clip_frames[:60], (1920, 1080)), 2),
    }
    stem = "tracking-moving-camera" if args.video is None else f"tracking-{args.video.stem}"
    save(args, stem, out, markdown(out))
    return 0


RUN_COLUMNS = (
    "every",
    "latency_frames",
    "recall_vs_every_frame",
    "mean_iou_vs_every_frame",
    "recall_vs_truth",
    "mean_iou_vs_truth",
    "detector_frames_per_frame",
    "looks_between_rounds",
    "ids_per_person",
    "label_changes_per_person_max",
    "per_detection_label_changes_per_person_max",
    "faces_detected",
    "faces_classified",
    "track_ms_per_frame",
    "cpu_per_stream_at_30fps",
)


def markdown(data: dict) -> str:
    """The runs as a table (columns of the moving camera's truth empty on a real video), the
    phases' mean and worst where run, and the tracker's and camera-motion estimate's costs."""
    out = [
        f"# Tracking: detection every Nth frame against every frame ({data['clip']})\n",
        f"`{data['command']}`, {data['started_at']}, {data['machine']['cpu']} "
        f"({data['machine']['cores']} cores), commit {data['machine']['git_commit']}. {data['frames']} "
        f"frames; detection and classification on every frame: {data['detect_ms_per_frame']} ms/frame. "
        "Recall: a drawn box with IoU >= 0.5, matched one to one; CPU in cores per stream at 30 fps.\n",
        markdown_table(data["runs"], RUN_COLUMNS),
    ]
    phased = [dict(r["over_phases"], every=r["every"]) for r in data["runs"] if "over_phases" in r]
    if phased:
        cols = ["every", *(k for k in phased[0] if k != "every")]
        out += ["\nOver every detection phase (the clip started at each of its first N frames):\n"]
        out.append(markdown_table(phased, cols))
    cost = ", ".join(f"{n} faces {ms} ms" for n, ms in data["tracker_ms_per_frame_by_faces"].items())
    rv = data["revealed_ms_per_frame"]
    out.append(
        f"\nTracker per frame: {cost}. Camera-motion estimate per frame: {rv['clip']} ms on the clip, "
        f"{rv['1080p']} ms at 1080p.\n"
    )
    return "\n".join(out)
