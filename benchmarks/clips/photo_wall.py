"""The ``group`` kind: a slow virtual 1080p camera panning and zooming over a wall of group photos.

``bald_guys.jpg`` (24 faces) hangs in the middle, smaller photos around it; faces 35-120 px.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clips.truth import FPS, SIZE, TruthFace, as_box, in_frame, noise_bank, read_rgb, with_noise
from streamer.types import Box

CANVAS = (5200, 3000)
# photos hung around bald_guys.jpg: (path under shared, scale); their faces 80-170 px on the wall
POSTERS = (
    ("media/two_people.jpg", 1.0),
    ("media/obama-720p.jpg", 0.8),
    ("data/dlib_faces/2008_002506.jpg", 1.5),
    ("data/dlib_faces/2008_001322.jpg", 1.6),
    ("data/dlib_faces/2009_004587.jpg", 1.5),
    ("data/dlib_faces/2008_001009.jpg", 1.5),
    ("data/dlib_faces/2008_002079.jpg", 2.0),
    ("data/dlib_faces/2007_007763.jpg", 2.0),
)
SLOTS = (  # x, y, w, h on the wall, around the middle photo
    (100, 100, 1400, 900),
    (100, 1050, 1400, 900),
    (100, 2000, 1400, 900),
    (3700, 100, 1400, 900),
    (3700, 1050, 1400, 900),
    (3700, 2000, 1400, 900),
    (1620, 40, 1000, 660),
    (2620, 40, 960, 660),
    (1620, 2300, 1000, 660),
    (2620, 2300, 960, 660),
)


def _hang(wall: np.ndarray, photo: np.ndarray, x: int, y: int, feather: int = 24) -> None:
    h, w = photo.shape[:2]
    m = np.zeros((h, w), np.float32)
    m[feather:-feather, feather:-feather] = 1
    m = cv2.GaussianBlur(m, (0, 0), feather / 2)[:, :, None]
    dst = wall[y : y + h, x : x + w]
    dst[:] = dst * (1 - m) + photo * m


def build_wall(shared: Path, detector, rng: np.random.Generator) -> tuple[np.ndarray, list[Box]]:
    """The wall of photos (float32 RGB, CANVAS) and the detector's boxes of its faces."""
    middle = read_rgb(shared / "data/dlib_faces/bald_guys.jpg")
    CW, CH = CANVAS
    wall = cv2.resize(cv2.GaussianBlur(middle, (0, 0), 12), CANVAS, interpolation=cv2.INTER_LINEAR)
    wall = cv2.GaussianBlur(wall, (0, 0), 20).astype(np.float32) * 0.7
    faces: list[Box] = []

    def hang(photo: np.ndarray, x: int, y: int) -> None:
        _hang(wall, photo.astype(np.float32), x, y)
        # upsample 1 finds the 40-80 px faces of the smaller photos too (the frame may show them at 40+)
        for b in detector.detect([photo], 1 if max(photo.shape) <= 1200 else 0)[0]:
            faces.append(Box(b.left + x, b.top + y, b.right + x, b.bottom + y, b.confidence))

    hang(middle, (CW - middle.shape[1]) // 2, (CH - middle.shape[0]) // 2)
    slots = [SLOTS[k] for k in rng.permutation(len(SLOTS))]
    for rel, scale in POSTERS:
        photo = read_rgb(shared / rel)
        for k, (sx, sy, sw, sh) in enumerate(slots):
            fit = min(scale, sw / photo.shape[1], sh / photo.shape[0])
            if fit >= 0.8 * scale:
                p = cv2.resize(
                    photo, None, fx=fit, fy=fit, interpolation=cv2.INTER_CUBIC if fit > 1 else cv2.INTER_AREA
                )
                hang(p, sx + (sw - p.shape[1]) // 2, sy + (sh - p.shape[0]) // 2)
                slots.pop(k)
                break
    return wall, faces


@dataclass(frozen=True)
class GroupCamera:
    period: float = 40.0  # seconds of one pan cycle (the zoom cycles 1.5 times as fast)
    scale: tuple[float, float] = (0.38, 0.7)  # frame pixels per wall pixel, wide and tight end
    phase: float = 0.0

    def view(self, t: float) -> tuple[float, float, float]:
        """(scale, left, top) of the wall shown at ``t``: a slow zoom and a Lissajous pan."""
        u = 2 * math.pi * t / self.period + self.phase
        z = 0.5 - 0.5 * math.cos(u * 1.5)
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * z
        vw, vh = SIZE[0] / s, SIZE[1] / s
        cx = CANVAS[0] / 2 + 0.5 * (CANVAS[0] - vw) * math.sin(u)
        cy = CANVAS[1] / 2 + 0.4 * (CANVAS[1] - vh) * math.sin(2 * u)
        return s, cx - vw / 2, cy - vh / 2


PRESCALE = 0.75  # the wall is kept at this scale (area-averaged), so each frame is a mild bilinear warp


def group_frames(
    shared: Path, detector, seed: int, seconds: float, cache: Path
) -> Iterator[tuple[np.ndarray, list[TruthFace]]]:
    rng = np.random.default_rng(seed)
    wall, faces = build_wall(shared, detector, rng)
    small_wall = np.clip(
        cv2.resize(wall, None, fx=PRESCALE, fy=PRESCALE, interpolation=cv2.INTER_AREA), 0, 255
    )
    small_wall = small_wall.astype(np.uint8)
    del wall
    cam = GroupCamera(phase=float(rng.uniform(0, 2 * math.pi)))
    noise = noise_bank(rng)
    for n in range(round(seconds * FPS)):
        s, x, y = cam.view(n / FPS)
        k = s / PRESCALE
        m = np.array([[k, 0, -x * s], [0, k, -y * s]], np.float64)
        frame = cv2.warpAffine(small_wall, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        truth = []
        for i, b in enumerate(faces):
            box = as_box(((b.left - x) * s, (b.top - y) * s, (b.right + 1 - x) * s, (b.bottom + 1 - y) * s))
            if box.right >= 0 and box.bottom >= 0 and box.left < SIZE[0] and box.top < SIZE[1]:
                truth.append(TruthFace(i, box, in_frame(box, SIZE)))
        yield with_noise(frame, noise, n), truth
