"""How frontal a face is, for choosing the best look at a track's face (looks.py).

dlib's 5-point landmark model (the one the face backbone aligns with: ``STREAMER_FACE_LANDMARKS``,
else the copy in ``face_recognition_models``) gives each eye's two corners and the base of the
nose. On a frontal face the nose lies halfway between the eyes; as the head turns, it moves
towards one eye along the line joining them. Frontalness is ``1 - 2 * offset``, where ``offset``
is the nose's distance from the eyes' midpoint along that line, in eye distances: 1 facing the
camera, about 0.5 for a three-quarter view, 0 in profile. About a millisecond per face; it runs
only at a look (a detection of a track), in the render thread that scores it. The snapshot scorer
and the unknown clusters (people/recognize.py) ask for the same faces of the same frame: each
thread keeps its last frame's answers, so a face is measured once.

Without the landmark model (a missing or unreadable file) every face counts as frontal, and the
store's snapshots are chosen by size and sharpness alone; that is logged once.
"""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

log = logging.getLogger(__name__)

_lock = threading.Lock()  # dlib's predictor is shared by the render threads
_memo = threading.local()  # per render thread: (the last frame asked about, {box: frontalness})
_predictor: object | None = None
_loaded = False


def _load() -> object | None:
    global _predictor, _loaded
    with _lock:
        if _loaded:
            return _predictor
        _loaded = True
        try:
            import dlib

            path = os.environ.get("STREAMER_FACE_LANDMARKS")
            if not path:
                import face_recognition_models as frm

                path = frm.pose_predictor_five_point_model_location()
            _predictor = (dlib, dlib.shape_predictor(str(path)))
        except (ImportError, RuntimeError, OSError) as e:
            log.warning("face landmarks unavailable (%s): snapshots are chosen by size and sharpness", e)
        return _predictor


def frontal_from_points(points: np.ndarray) -> float:
    """Frontalness from dlib's 5 points ((5, 2): one eye's corners, the other's, the nose's base)."""
    a, b, nose = points[0:2].mean(0), points[2:4].mean(0), points[4]
    axis = b - a
    d = float(np.hypot(*axis))
    if d < 1.0:
        return 0.0
    offset = abs(float(np.dot(nose - (a + b) / 2, axis / d))) / d
    return max(0.0, 1.0 - 2.0 * offset)


def frontalness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """How frontal the face in ``box`` (left, top, right, bottom) of an RGB image is, 0 to 1."""
    loaded = _load()
    if loaded is None:
        return 1.0
    key = tuple(int(v) for v in box)
    frame, known = getattr(_memo, "last", (None, {}))
    if frame is not image:  # (the frame itself is held, so its id cannot be reused meanwhile)
        frame, known = image, {}
        _memo.last = (frame, known)
    if key not in known:
        dlib, predictor = loaded
        with _lock:
            shape = predictor(np.ascontiguousarray(image), dlib.rectangle(*key))
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], np.float64)
        known[key] = frontal_from_points(points)
    return known[key]
