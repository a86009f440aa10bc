"""Reading the detector parity cases, and dlib's own CNN detector as the port's reference.

dlib's boxes for the parity cases are recorded in ``dlib_mmod_boxes.json`` (beside this file) with
the dlib-bin version that made them and a digest of each case's pixels: dlib takes 80-90 s of the
suite's two cores to make them again. A case whose record is missing, or was made by another
dlib-bin or from other pixels (another OpenCV decoding a clip's frame), is run on dlib again.
test_mmod checks the record against dlib itself on its cheapest cases every run.

dlib runs one image on one core and holds the GIL, so the cases it runs are shared out to worker
processes (spawned: the parent may have loaded TensorFlow), biggest image first. The boxes are
dlib's, unchanged: this only decides where, when and in which order dlib runs.

``python -m tests.support.dlib_reference`` writes the record for test_mmod's cases
(``STREAMER_FULL_PARITY=1``: every case).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from streamer.types import Box

RECORD = Path(__file__).with_name("dlib_mmod_boxes.json")

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


def case_key(case_id: str, upsample: int) -> str:
    return f"{case_id}@up{upsample}"


def digest(image: np.ndarray) -> str:
    """The case's pixels, shape included: a record made from other pixels is not used."""
    h = hashlib.sha256(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()[:24]


def dlib_version() -> str:
    import dlib

    return dlib.__version__


def recorded(
    images: Mapping[str, np.ndarray], cases: Sequence[tuple[str, int]], record: Path = RECORD
) -> dict[tuple[str, int], list[Box]]:
    """The cases whose boxes the record holds for this dlib-bin and these pixels."""
    if not record.is_file():
        return {}
    data = json.loads(record.read_text())
    if data.get("dlib") != dlib_version():
        return {}
    out: dict[tuple[str, int], list[Box]] = {}
    for case_id, up in cases:
        entry = data["cases"].get(case_key(case_id, up))
        if entry and entry["pixels"] == digest(images[case_id]):
            out[(case_id, up)] = [Box(*b[:4], confidence=b[4]) for b in entry["boxes"]]
    return out


def dlib_boxes(
    shared: Path, cases: Sequence[tuple[str, int]], images: Mapping[str, np.ndarray]
) -> dict[tuple[str, int], list[Box]]:
    """dlib's boxes for every case: from the record where it holds them, the rest run on dlib."""
    have = recorded(images, cases)
    rest = [c for c in cases if c not in have]
    if rest:
        pixels = {c: im.shape[0] * im.shape[1] for c, im in images.items()}
        have.update(reference_boxes(shared, rest, pixels))
    return {c: have[c] for c in cases}


def write_record(
    shared: Path, cases: Sequence[tuple[str, int]], images: Mapping[str, np.ndarray], record: Path = RECORD
) -> None:
    pixels = {c: im.shape[0] * im.shape[1] for c, im in images.items()}
    boxes = reference_boxes(shared, cases, pixels)
    data = {
        "about": "dlib-bin's CNN face detector (mmod_human_face_detector.dat) on test_mmod's parity "
        "cases; written by python -m tests.support.dlib_reference",
        "dlib": dlib_version(),
        "cases": {
            case_key(c, u): {
                "pixels": digest(images[c]),
                "boxes": [[b.left, b.top, b.right, b.bottom, float(b.confidence)] for b in boxes[(c, u)]],
            }
            for c, u in sorted(cases)
        },
    }
    text = json.dumps(data, indent=1)
    # one line a box
    box = r"\[\s+(-?\d+),\s+(-?\d+),\s+(-?\d+),\s+(-?\d+),\s+([-\d.e]+)\s+\]"
    text = re.sub(box, r"[\1, \2, \3, \4, \5]", text)
    record.write_text(text + "\n")


if __name__ == "__main__":
    from tests import test_mmod

    shared_path = test_mmod.shared_dir()
    ims = {c: load_case(shared_path, c) for c in {c for c, _ in test_mmod.CASES}}
    write_record(shared_path, test_mmod.CASES, ims)
    print(f"{len(test_mmod.CASES)} cases written to {RECORD}")
