"""Reading the detector parity cases, and dlib's own CNN detector as the port's reference on every core.

dlib runs one image on one core and holds the GIL, so the reference boxes for the parity cases are
computed in worker processes (spawned: the parent may have loaded TensorFlow), biggest image first.
The boxes are dlib's, unchanged: this only decides where and in which order dlib runs.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from streamer.types import Box

_DET = None


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok, f"{path} frame {index}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_case(shared: Path, case_id: str) -> np.ndarray:
    """A case's image: ``path`` (an image under ``shared``) or ``path#N`` (frame N of a video)."""
    path, _, frame = case_id.partition("#")
    return clip_frame(shared / path, int(frame)) if frame else read_rgb(shared / path)


def _start() -> None:
    global _DET
    from streamer.detect import make_detector

    _DET = make_detector("dlib")


def _boxes(shared: Path, case_id: str, upsample: int) -> list[Box]:
    assert _DET is not None
    return _DET.detect([load_case(shared, case_id)], upsample)[0]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def reference_boxes(
    shared: Path, cases: Sequence[tuple[str, int]], pixels: Mapping[str, int], workers: int | None = None
) -> dict[tuple[str, int], list[Box]]:
    """dlib's boxes for each (case id, upsample), in ``workers`` processes (default: one a core);
    ``pixels`` (by case id) puts the biggest cases, the slowest, first. A failure or a test's
    timeout ends the workers at once (the pool is terminated, not drained)."""
    todo = sorted(cases, key=lambda c: -pixels[c[0]] * 4 ** c[1])
    n = max(1, min(workers or cores(), len(todo)))
    with multiprocessing.get_context("spawn").Pool(n, initializer=_start) as pool:
        pending = {case: pool.apply_async(_boxes, (shared, *case)) for case in todo}
        return {case: pending[case].get() for case in cases}
