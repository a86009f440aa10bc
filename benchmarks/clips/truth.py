"""A 1080p 25 fps clip with exact per-frame face truth, and what every kind of such clip shares.

``Clip``: the H.264 file and, per frame, every face in it (``TruthFace``: who, where, and whether
a detector should see it), saved next to the video as ``<name>.truth.json``. The kinds
(street.py, photo_wall.py) draw their frames with the helpers here; catalog.py makes and caches
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.types import Box

FPS = 25
SIZE = (1920, 1080)
MIN_FACE = 40  # the smallest face the issue asks for, in frame pixels


@dataclass(frozen=True)
class TruthFace:
    person: int
    box: Box
    visible: bool  # fully in the frame and at most a quarter hidden by nearer people

    @property
    def width(self) -> int:
        return self.box.width


@dataclass
class Clip:
    name: str
    path: Path
    fps: float
    size: tuple[int, int]
    truth: list[list[TruthFace]]  # per frame

    @property
    def seconds(self) -> float:
        return len(self.truth) / self.fps

    def scored(self, n: int, min_px: int = MIN_FACE) -> list[TruthFace]:
        """The faces of frame ``n`` a detector should find: visible and at least ``min_px`` wide."""
        return [f for f in self.truth[n] if f.visible and f.width >= min_px]


def _box_json(f: TruthFace) -> list[int]:
    b = f.box
    return [f.person, b.left, b.top, b.right, b.bottom, int(f.visible)]


def save_truth(clip: Clip, path: Path) -> None:
    data = {
        "name": clip.name,
        "fps": clip.fps,
        "size": list(clip.size),
        "format": "per frame: [person, left, top, right, bottom, visible] (dlib inclusive boxes)",
        "frames": [[_box_json(f) for f in faces] for faces in clip.truth],
    }
    path.write_text(json.dumps(data, separators=(",", ":")))


def load_clip(video: Path) -> Clip:
    data = json.loads(video.with_suffix(".truth.json").read_text())
    truth = [
        [
            TruthFace(p, Box(left, top, right, bottom, 1.0), bool(v))
            for p, left, top, right, bottom, v in faces
        ]
        for faces in data["frames"]
    ]
    return Clip(data["name"], video, float(data["fps"]), tuple(data["size"]), truth)  # type: ignore[arg-type]


def as_box(face: tuple[float, float, float, float]) -> Box:
    return Box(round(face[0]), round(face[1]), round(face[2]) - 1, round(face[3]) - 1, 1.0)


def in_frame(b: Box, size: tuple[int, int]) -> bool:
    return b.left >= 0 and b.top >= 0 and b.right < size[0] and b.bottom < size[1]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def noise_bank(rng: np.random.Generator, n: int = 12) -> list[np.ndarray]:
    """A few frames of camera noise (sigma 2), cycled: fresh noise per frame costs more than the rest."""
    return [rng.normal(0, 2.0, (SIZE[1], SIZE[0], 3)).astype(np.float32) for _ in range(n)]


def with_noise(frame: np.ndarray, noise: list[np.ndarray], n: int) -> np.ndarray:
    return np.clip(frame + noise[(n * 7) % len(noise)], 0, 255).astype(np.uint8)
