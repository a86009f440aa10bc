"""Camera and scene changes: a cut to another scene, and frames that change size.

A scene cut (an edited clip cutting to another shot, a camera switched) leaves no face where a
track is: the tracker ends every track and asks for a detection on the next frame. A cut is told
by two measures together. The grey histogram of consecutive frames jumps (Bhattacharyya distance
over ``SCENE_CUT``), and so does the picture's layout (the normalised cross-correlation of
their 32x24 thumbnails falls under ``SAME_LAYOUT``). The histogram alone also jumps when the
lights go on or a camera's auto-exposure steps: the layout tells those apart, since the same
picture, brighter, keeps its layout.

A change of the frame size (a WebRTC sender adapting to its bandwidth, a camera reconfigured) is
the same view scaled when the aspect ratio stays (within ``SAME_SHAPE``): the tracker scales
every track with it. Another picture shape is not the same view: a cut.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.track.appearance import normalised

# Bhattacharyya distance between consecutive frames' grey histograms above which the scene changed
# (a cut): on the Hamilton clip its 3 cuts score 0.23-0.39, everything else under 0.06; the
# moving-camera clip stays under 0.03. A TV dinner clip's cuts between shots of the same warm
# colours score 0.12-0.14 (a family at one table, shot from two sides; its layout then falls to
# 0.30 and under), and someone passing right in front of its camera 0.08. On the ten real clips
# and the test clips no other frame scores over 0.06 with its layout under SAME_LAYOUT
SCENE_CUT = 0.10
# ... and the picture's layout changed too: the normalised cross-correlation of consecutive frames'
# 32x24 thumbnails is under this. A change of exposure alone (lights switched on, a camera's
# auto-exposure) moves the histogram as much as a cut (0.3-0.45 for a gain of 0.5-2.2) but keeps
# the layout (0.88-0.89); the Hamilton clip's cuts score 0.01-0.26, its other frames 0.66 and more
SAME_LAYOUT = 0.5
# a new frame size whose aspect ratio is within this share of the old one's is the same view, scaled
SAME_SHAPE = 0.02


class SceneWatch:
    """The last frame's size, grey histogram and thumbnail, to compare the next frame with."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None  # (width, height) of the frames followed
        self._hist: np.ndarray | None = None
        self._thumb = np.zeros((24, 32), np.float32)  # the last frame's, normalised (see SAME_LAYOUT)

    def resized(self, w: int, h: int) -> tuple[float, float] | None:
        """The next frame is w x h: (sx, sy), how much it is larger than the last one, if its size
        changed (None: the same size, or the first frame)."""
        old, self.size = self.size, (w, h)
        if old is None or old == (w, h):
            return None
        return w / old[0], h / old[1]

    def is_cut(self, gray: np.ndarray) -> bool:
        """Whether ``gray`` (the next frame, grey, at any scale) is of another scene than the last."""
        # a 16th of the pixels tells a scene cut as well as all of them, at a 16th of the cost
        small = np.ascontiguousarray(gray[::4, ::4])
        hist = cv2.calcHist([small], [0], None, [32], [0, 256])
        cv2.normalize(hist, hist)
        thumb = layout(small)
        cut = (
            self._hist is not None
            and cv2.compareHist(self._hist, hist, cv2.HISTCMP_BHATTACHARYYA) > SCENE_CUT
            and not same_layout(thumb, self._thumb)
        )
        self._hist, self._thumb = hist, thumb
        return cut


def same_view(sx: float, sy: float) -> bool:
    """Frames scaled by (sx, sy) show the same view (the aspect ratio kept), not another picture."""
    return not abs(sx / sy - 1.0) > SAME_SHAPE


def layout(image: np.ndarray) -> np.ndarray:
    """32x24, grey, zero mean, unit norm: the picture's layout, whatever its exposure (``image``
    grey or RGB, at any scale: shrunk before it is made grey); a flat picture's is all zeros."""
    small = cv2.resize(image, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
    t = normalised(small.mean(axis=2) if small.ndim == 3 else small)
    return np.zeros((24, 32), np.float32) if t is None else t


def same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ``layout``s are of the same picture (not a cut)."""
    return float((a * b).sum()) >= SAME_LAYOUT
