"""A clip with known motion: a virtual camera panning and zooming over a still with many faces.

The faces are found once on the still (by the detector); each frame's true boxes are those
boxes carried through the camera's crop-and-scale, so the truth is exact wherever the camera
goes. Faces leave and enter the view as the camera pans: tracks must end and start.

``frames`` gives the clip in memory (the tracking scenario); ``prepare_clip`` writes it as a file
that loops without a jump, with its truth (the service scenario's streams sweep).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.clips.video import write_h264
from streamer.types import Box

STILL = "data/dlib_faces/bald_guys.jpg"  # 24 faces, 96-284 px, under ../shared
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@dataclass(frozen=True)
class CameraPath:
    frames: int = 120
    size: tuple[int, int] = (640, 480)  # output (w, h)
    view_w: tuple[float, float] = (1100.0, 800.0)  # crop width at the wide and tight end of the zoom
    zooms: float = 1.0  # zoom cycles over the clip
    pan: float = 1.0  # how much of the still's width the camera crosses (1: all of it)
    start: float = 0.0  # where the pan starts, as a fraction of the still's width

    def window(self, still_wh: tuple[int, int], n: int) -> tuple[float, float, float, float]:
        """The still's crop (x, y, w, h) shown on frame ``n``: left to right, zooming in and out."""
        sw, sh = still_wh
        u = n / max(1, self.frames - 1)
        z = 0.5 - 0.5 * math.cos(2 * math.pi * self.zooms * u)
        w = self.view_w[0] + (self.view_w[1] - self.view_w[0]) * z
        h = w * self.size[1] / self.size[0]
        x = (sw - w) * min(1.0, self.start + self.pan * u)
        y = (sh - h) * (0.35 + 0.2 * math.sin(2 * math.pi * self.pan * u))
        return x, y, w, h


def render(still: np.ndarray, path: CameraPath, n: int) -> np.ndarray:
    x, y, w, _h = path.window((still.shape[1], still.shape[0]), n)
    s = path.size[0] / w
    m = np.array([[s, 0, -x * s], [0, s, -y * s]], dtype=np.float64)
    return cv2.warpAffine(still, m, path.size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def truth(faces: Sequence[Box], still_wh: tuple[int, int], path: CameraPath, n: int) -> list[tuple[int, Box]]:
    """(index of the face on the still, its box on frame ``n``) for the faces fully in view."""
    x, y, w, _ = path.window(still_wh, n)
    s = path.size[0] / w
    out = []
    for k, b in enumerate(faces):
        bb = Box(
            round((b.left - x) * s),
            round((b.top - y) * s),
            round((b.right + 1 - x) * s) - 1,
            round((b.bottom + 1 - y) * s) - 1,
            b.confidence,
        )
        if bb.left >= 0 and bb.top >= 0 and bb.right < path.size[0] and bb.bottom < path.size[1]:
            out.append((k, bb))
    return out


def load_still(shared: Path) -> np.ndarray:
    bgr = cv2.imread(str(shared / STILL))
    if bgr is None:
        raise FileNotFoundError(shared / STILL)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frames(still: np.ndarray, path: CameraPath) -> Iterator[np.ndarray]:
    for n in range(path.frames):
        yield render(still, path, n)


MIN_FACE = 64  # true faces narrower than this are not counted: the detector (upsample 0) misses them


def people(
    faces: Sequence[Box], still_wh: tuple[int, int], path: CameraPath, n: int, min_width: int = MIN_FACE
) -> list[tuple[int, Box]]:
    """The true faces of frame ``n`` that count: fully in view and at least ``min_width`` wide."""
    return [(k, b) for k, b in truth(faces, still_wh, path, n) if b.width >= min_width]


def ping_pong(path: CameraPath) -> list[int]:
    """The camera frame of each frame of a clip that loops without a jump: there and back again."""
    return [*range(path.frames), *range(path.frames - 2, 0, -1)]


def write_clip(still: np.ndarray, path: CameraPath, dst: Path, fps: float = 30.0) -> list[int]:
    """Write the ping-pong clip (H.264) to ``dst``; returns the camera frame of each clip frame."""
    order = ping_pong(path)
    options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "18"}
    write_h264(dst, (render(still, path, n) for n in order), round(fps), path.size, options)
    return order


@dataclass(frozen=True)
class TruthClip:
    """The moving-camera clip as a file a stream plays in a loop, with the true boxes of each frame."""

    path: Path
    truth: list[list[Box]]  # the true boxes of each clip frame
    description: str
    every_frame_detection: dict[str, Any]  # the detector on (sampled) clip frames against the truth


def prepare_clip(work: Path, config: Any, reference_stride: int = 8) -> TruthClip:
    """Write the moving-camera clip into ``work``; true boxes from the camera path.

    ``config``: the service's Config (its detector finds the faces on the still, once, and
    detects every ``reference_stride``-th clip frame for the every-frame ceiling, scored as
    ``benchmarks.scoring.BoxScore`` scores the boxes a stream draws)."""
    from benchmarks.scoring import BoxScore
    from streamer.inference.engine import Engine, engine_spec

    still = load_still(SHARED)
    path = CameraPath()
    dst = work / "moving-camera.mp4"
    order = write_clip(still, path, dst)
    engine = Engine(dataclasses.replace(engine_spec(config), classifiers=()))
    on_still = [b for b in engine.detector.detect([still], 0)[0] if not b.weak]
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
            ref.add(truth[i], [f.box for f in res.faces if not f.box.weak])
    cap.release()
    del engine
    return TruthClip(
        dst,
        truth,
        f"moving camera over {len(on_still)} faces, {path.size[0]}x{path.size[1]}, "
        f"{len(order)} frames looped ({path.frames} there and back)",
        {"sampled_every": reference_stride, **ref.as_dict()},
    )
