"""dlib's CNN face detector (MMOD), as shipped in the dlib-bin wheel.

dlib holds the GIL for the whole call, so this runs inside a worker process,
never a thread of the service's event loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from streamer.detect.base import as_rgb
from streamer.detect.mmod.pyramid import pyramid_up_size
from streamer.types import Box

# The smallest image (after upsampling) dlib's CNN takes. Below it dlib raises RuntimeError
# ("Filter windows must be small enough to fit into the padded image"), but only after writing
# past the end of a heap block (valgrind: "Invalid write of size 4"): the process' heap is
# corrupted and crashes later, somewhere else. Such images are never handed to dlib.
MIN_ROWS, MIN_COLS = 7, 10


def dlib_accepts(rows: int, cols: int, upsample: int) -> bool:
    """Whether dlib's CNN can run on an image of this size at this upsampling."""
    for _ in range(upsample):
        rows, cols = pyramid_up_size(rows, cols)
    return rows >= MIN_ROWS and cols >= MIN_COLS


def default_weights_path() -> str:
    import face_recognition_models

    return face_recognition_models.cnn_face_detector_model_location()


class DlibDetector:
    name = "dlib"

    def __init__(self, weights: str | None = None, batch_size: int = 8) -> None:
        import dlib

        self._net = dlib.cnn_face_detection_model_v1(weights or default_weights_path())
        self._batch_size = batch_size

    def detect(self, images: Sequence[np.ndarray], upsample: int = 0, exact: bool = True) -> list[list[Box]]:
        rgb = [as_rgb(im) for im in images]
        out: list[list[Box]] = [[] for _ in rgb]
        # dlib's batched call rejects images of different sizes: group by shape.
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, im in enumerate(rgb):
            if dlib_accepts(im.shape[0], im.shape[1], upsample):  # (too small: no faces)
                groups[im.shape].append(i)
        for idxs in groups.values():
            if len(idxs) == 1:
                results = [self._net(rgb[idxs[0]], upsample)]
            else:
                results = self._net([rgb[i] for i in idxs], upsample, batch_size=self._batch_size)
            for i, dets in zip(idxs, results, strict=True):
                boxes = [
                    Box(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
                    for d in dets
                ]
                boxes.sort(key=lambda b: -b.confidence)
                out[i] = boxes
        return out
