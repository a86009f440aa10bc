"""Helpers for the tracking tests (tests/test_tracking_*.py): faces, descriptors, real face crops,
the moving camera over real faces and the demo clip's frames."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from benchmarks.clips.moving_camera import CameraPath, frames, load_still, truth
from streamer.types import Box, Face
from tests.conftest import CLIP

GREY = np.full((240, 320, 3), 128, np.uint8)  # a flat frame: no flow, boxes move only by hand


def face(x: int, y: int, size: int = 60, conf: float = 1.0, labels=()) -> Face:
    return Face(Box(x, y, x + size - 1, y + size - 1, conf), tuple(labels))


def near_descriptor(rng: np.random.Generator, v: np.ndarray, d: float) -> np.ndarray:
    """A face descriptor ``d`` from ``v``, in a random direction."""
    step = rng.normal(size=v.shape).astype(np.float32)
    return v + step * (d / np.linalg.norm(step))


def xyxy(b: Box) -> tuple[int, int, int, int]:
    return (b.left, b.top, b.right, b.bottom)


def two_faces_and_a_wall(shared: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two real faces (64 px, RGB, from dlib's bald_guys.jpg) and a textured 640x480 wall."""
    bgr = cv2.imread(str(shared / "data/dlib_faces/bald_guys.jpg"))
    faces = [
        cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2RGB), (64, 64))
        for c in (bgr[433:613, 552:732], bgr[0:180, 0:180])
    ]
    rng = np.random.default_rng(3)
    wall = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    return faces[0], faces[1], wall


@functools.lru_cache(maxsize=1)
def moving_camera(shared: Path):
    """The still, its faces (detected once), the camera path, the frames and per-frame truth: made
    once per test session, for every test file's ``camera`` fixture (the tests only read them)."""
    from streamer.detect import make_detector

    still = load_still(shared)
    (faces,) = make_detector("mmod").detect([still], 0)
    assert len(faces) >= 20
    path = CameraPath(frames=90)
    images = list(frames(still, path))
    wh = (still.shape[1], still.shape[0])
    people = [[(k, b) for k, b in truth(faces, wh, path, n) if b.width >= 64] for n in range(path.frames)]
    return still, faces, path, images, people


def clip_frames(n: int) -> list[np.ndarray]:
    """The first ``n`` frames of the demo clip (the Hamilton clip), RGB."""
    cap = cv2.VideoCapture(str(CLIP))
    images = []
    while len(images) < n:
        ok, bgr = cap.read()
        assert ok
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return images
