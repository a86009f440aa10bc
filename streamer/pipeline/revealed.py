"""What came into view since the detector last looked: the camera's own motion, frame to frame.

A panning or zooming camera brings new picture in at the frame's edges; a face there has no
box until the detector looks at it, which between detection rounds (``detect_every``) is up to
a round interval away. This keeps, on a small grey copy, a mask of the new picture the detector
has not looked at yet, in the current frame's coordinates: every frame the camera's motion is
estimated (sparse optical flow on a grid of points, a similarity transform fitted by RANSAC, so
people moving in the picture do not count) and the mask is carried with it; what has no
counterpart in the frame before (the new picture) is unseen until a look covers it.
``unseen`` gives the bands of it along the edges, for the face stage's look between rounds
(tracking.py). A still camera reveals nothing; a camera whose motion cannot be estimated (a
blank picture) is taken as still.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.types import Box, Region

WIDTH = 160  # working width of the grey copy
GRID = 12  # points across (and as many, for the aspect, down) whose flow gives the camera's motion
MIN_POINTS = 12  # fewer points agreeing on one motion: motion unknown (taken as still)


def camera_motion(prev: np.ndarray, cur: np.ndarray) -> np.ndarray | None:
    """The 2x3 similarity transform taking ``prev``'s pixels to ``cur``'s (same-size grey images),
    or None where it cannot be told."""
    h, w = prev.shape
    ny = max(2, round(GRID * h / w))
    xs, ys = np.meshgrid(np.linspace(0.08 * w, 0.92 * w, GRID), np.linspace(0.08 * h, 0.92 * h, ny))
    p0 = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32).reshape(-1, 1, 2)
    p1, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, winSize=(15, 15), maxLevel=3)
    if p1 is None:
        return None
    good = ok.ravel() == 1
    if good.sum() < MIN_POINTS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if m is None or inliers is None or int(inliers.sum()) < MIN_POINTS:
        return None
    return m


class Revealed:
    def __init__(self, width: int = WIDTH) -> None:
        self.width = width
        self._prev: np.ndarray | None = None
        # 0 where new picture came into view and the detector has not looked since (working
        # pixels), as of the last look: carried to the current frame by ``_since`` (the camera's
        # motion since then, composed: a pan of a third of a working pixel a frame adds up)
        self._seen: np.ndarray | None = None
        self._since = np.eye(3)
        self._scale = 1.0  # working pixels per source pixel
        self.motion: np.ndarray | None = None  # the last frame step's transform (working pixels)

    def update(self, grey: np.ndarray, size: tuple[int, int]) -> None:
        """This frame (grey, at any scale; ``size``: the source's (width, height)): carry what was
        looked at with the camera's motion since the frame before."""
        w, h = size
        s = self.width / w
        small = cv2.resize(grey, (self.width, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        if self._prev is None or self._prev.shape != small.shape or self._seen is None:
            self._seen = np.ones(small.shape, np.uint8)  # nothing came into view yet
            self._since = np.eye(3)
            self.motion = None
        else:
            self.motion = camera_motion(self._prev, small)
            if self.motion is not None:
                self._since = np.vstack([self.motion, [0.0, 0.0, 1.0]]) @ self._since
        self._prev, self._scale = small, s

    def _now(self) -> np.ndarray | None:
        """The mask carried to the current frame."""
        if self._seen is None or self._prev is None:
            return None
        h, w = self._seen.shape
        return cv2.warpAffine(
            self._seen,
            self._since[:2],
            (w, h),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )

    def looked(self, regions: Sequence[Region], size: tuple[int, int]) -> None:
        """The detector looks at ``regions`` of this frame (none: all of it)."""
        seen = self._now()
        if seen is None:
            return
        if not regions:
            seen[:] = 1
        s = self._scale
        for r in regions:
            seen[int(r.top * s) : int(r.bottom * s) + 1, int(r.left * s) : int(r.right * s) + 1] = 1
        self._seen, self._since = seen, np.eye(3)

    def unseen(self, min_px: float) -> list[Box]:
        """Boxes (source pixels) of what came into view and was not looked at since: a band along
        each edge it came in at, at least ``min_px`` source pixels deep (a thinner sliver waits: no
        face shows in it yet). A camera panning right and down brings in two bands, one zooming
        out four; each is as long as what came in along its edge."""
        seen = self._now()
        if seen is None:
            return []
        new = seen == 0
        if not new.any():
            return []
        k = 1.0 / self._scale
        out = []
        for side in ("left", "right", "top", "bottom"):
            # the lines from this edge in (columns or rows), as long as at least half of each is new
            lines = new if side in ("left", "right") else new.T  # (along the edge, in from it)
            if side in ("right", "bottom"):
                lines = lines[:, ::-1]
            mostly = lines.mean(axis=0) >= 0.5
            depth = len(mostly) if mostly.all() else int(np.argmin(mostly))
            if depth * k < min_px:
                continue
            along = np.flatnonzero(lines[:, :depth].any(axis=1))
            a0, a1 = int(along[0]), int(along[-1]) + 1
            n = lines.shape[1]
            d0, d1 = (n - depth, n) if side in ("right", "bottom") else (0, depth)
            x0, x1, y0, y1 = (d0, d1, a0, a1) if side in ("left", "right") else (a0, a1, d0, d1)
            out.append(Box(int(x0 * k), int(y0 * k), round(x1 * k) - 1, round(y1 * k) - 1, 0.0))
        return out
