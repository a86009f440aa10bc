"""Box accuracy: the boxes drawn on output frames against the true boxes of those frames.

One definition for the tracking scenario and the live streams sweep: per frame, drawn boxes and
true boxes are matched one to one (Hungarian assignment on IoU, ``streamer.track.matching``); a
true face counts as found when its match has IoU >= 0.5. Recall = found / true faces; mean IoU
is over all true faces, 0 where missed.

For the streams sweep, ``prepare_clip`` writes the moving-camera clip (moving_camera.py) as a
file the service plays in a loop, with the true boxes of every clip frame from the camera path,
and scores what detection on every frame would give against the same truth (the ceiling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamer.track.matching import iou_matrix, match
from streamer.types import Box

MIN_IOU = 0.5


def xyxy(b: Box) -> tuple[int, int, int, int]:
    return (b.left, b.top, b.right, b.bottom)


def compare(ref: Sequence[Box], got: Sequence[Box]) -> tuple[int, float, list[tuple[int, int]]]:
    """(found, sum of IoU over ``ref``, pairs ref -> got with IoU >= 0.5)."""
    m = iou_matrix([xyxy(b) for b in ref], [xyxy(b) for b in got])
    pairs, _, _ = match(m, MIN_IOU)
    return len(pairs), float(sum(m[i, j] for i, j in pairs)), pairs


@dataclass
class BoxScore:
    frames: int = 0
    true_faces: int = 0
    found: int = 0
    iou_sum: float = 0.0
    frames_all_found: int = 0  # frames on which every true face had a box

    def add(self, truth: Sequence[Box], drawn: Sequence[Box]) -> None:
        k, s, _ = compare(truth, drawn)
        self.frames += 1
        self.true_faces += len(truth)
        self.found += k
        self.iou_sum += s
        self.frames_all_found += int(k == len(truth))

    def merge(self, other: BoxScore) -> None:
        self.frames += other.frames
        self.true_faces += other.true_faces
        self.found += other.found
        self.iou_sum += other.iou_sum
        self.frames_all_found += other.frames_all_found

    def as_dict(self) -> dict[str, Any]:
        return {
            "box_recall": round(self.found / self.true_faces, 4) if self.true_faces else None,
            "box_mean_iou": round(self.iou_sum / self.true_faces, 4) if self.true_faces else None,
            "frames_all_boxed": round(self.frames_all_found / self.frames, 4) if self.frames else None,
            "frames_scored": self.frames,
            "true_faces_scored": self.true_faces,
        }


def score(records: Iterable[tuple[int, Sequence[Box]]], truth: Sequence[Sequence[Box]]) -> BoxScore:
    """Score (frame index, boxes drawn) records of a stream that plays a clip of ``len(truth)``
    frames in a loop: frame index ``i`` shows clip frame ``i % len(truth)``."""
    s = BoxScore()
    for index, drawn in records:
        s.add(truth[index % len(truth)], drawn)
    return s


@dataclass(frozen=True)
class TruthClip:
    path: Path
    truth: list[list[Box]]  # the true boxes of each clip frame
    description: str
    every_frame_detection: dict[str, Any]  # the detector on (sampled) clip frames against the truth


def prepare_clip(work: Path, config: Any, reference_stride: int = 8) -> TruthClip:
    """Write the moving-camera clip into ``work``; true boxes from the camera path.

    ``config``: the service's Config (its detector finds the faces on the still, once, and
    detects every ``reference_stride``-th clip frame for the every-frame ceiling)."""
    import cv2

    from benchmarks.moving_camera import CameraPath, load_still, people, write_clip
    from streamer.inference.engine import Engine, engine_spec

    root = Path(__file__).resolve().parents[1]
    still = load_still(root.parent / "shared")
    path = CameraPath()
    dst = work / "moving-camera.mp4"
    order = write_clip(still, path, dst)
    engine = Engine(dataclasses.replace(engine_spec(config), classifiers=()))
    (on_still,) = engine.detector.detect([still], 0)
    wh = (still.shape[1], still.shape[0])
    truth = [[b for _, b in people(on_still, wh, path, n)] for n in order]
    ref = BoxScore()
    cap = cv2.VideoCapture(str(dst))
    for i in range(len(order)):
        ok, bgr = cap.read()
        if not ok:
            raise OSError(f"{dst}: {i} frames readable, {len(order)} written")
        if i % reference_stride == 0:
            (res,), _ = engine.run([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])
            ref.add(truth[i], [f.box for f in res.faces])
    cap.release()
    del engine
    return TruthClip(
        dst,
        truth,
        f"moving camera over {len(on_still)} faces, {path.size[0]}x{path.size[1]}, "
        f"{len(order)} frames looped ({path.frames} there and back)",
        {"sampled_every": reference_stride, **ref.as_dict()},
    )
