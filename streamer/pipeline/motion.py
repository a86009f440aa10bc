"""Where the picture changed: frame differencing on a small grey copy, as Frigate does.

Every frame is compared with the one before; what tracked people's own movement explains is left
out (a walking person's body is not a new face to look for); changes add up until the detection planner takes
them (one detection round may span several frames). Cheap: about a millisecond per frame at the
default working width.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.track.matching import XYXY

WIDTH = 320  # working width of the grey copy
THRESHOLD = 18  # grey levels a pixel must change by
MIN_BLOB = 4  # working pixels: smaller changes are noise
BODY = 6  # face heights below a tracked face that its person's motion covers


class MotionDetector:
    def __init__(self, width: int = WIDTH, threshold: int = THRESHOLD) -> None:
        self.width = width
        self.threshold = threshold
        self._prev: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._scale = 1.0  # source pixels per working pixel

    def update(self, grey: np.ndarray, size: tuple[int, int], explained: Sequence[XYXY] = ()) -> None:
        """Add this frame's changes. ``grey``: the frame in grey, at any scale (the tracker's working
        copy: reducing a grey image costs a third of reducing the colour one); ``size``: the source's
        (width, height). ``explained``: tracked faces (source pixels) on this frame; the change of
        each one's person (the face, a face width either side, the body below) is theirs, not a sign
        of a new face."""
        w, h = size
        s = min(1.0, self.width / w)
        small = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(small, (3, 3), 0)
        if self._prev is not None and self._prev.shape == grey.shape:
            changed = cv2.absdiff(grey, self._prev) > self.threshold
            for x0, y0, x1, y1 in explained:
                fw, fh = x1 - x0, y1 - y0
                a, b = max(0, int((x0 - fw) * s)), max(0, int((y0 - fh / 2) * s))
                c, d = int((x1 + fw) * s) + 1, int((y1 + BODY * fh) * s) + 1
                changed[b:d, a:c] = False
            self._mask = changed if self._mask is None else (self._mask | changed)
        else:  # first frame, or the source changed size: nothing known yet
            self._mask = None
        self._prev = grey
        self._scale = 1.0 / s

    def take(self) -> tuple[list[XYXY], float]:
        """The boxes (source pixels) of what changed since the last call, and the changed fraction
        of the picture; starts afresh."""
        mask, self._mask = self._mask, None
        if mask is None or not mask.any():
            return [], 0.0
        fraction = float(mask.mean())
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=2)
        n, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        k = self._scale
        boxes = [
            (x * k, y * k, (x + w) * k - 1, (y + h) * k - 1)
            for x, y, w, h, area in stats[1:n].tolist()
            if area >= MIN_BLOB
        ]
        return boxes, fraction
