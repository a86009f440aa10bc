"""Does a track's box still show the face the detector saw? A small grey patch of the face where
the detector last found it (the template), against what lies under and around the track's box now:
the best normalised cross-correlation over small shifts and scales of the box.

The flow moves a box with whatever texture lies inside it: when someone passes in front of a face,
the box can be pulled along with the passer-by, or left on the wall behind; a carry gone wrong
starts a box beside the face. The detector would say so at its next look, but on a big frame a
track is looked at every few rounds, seconds apart. The template says so on the next frame.
"""

from __future__ import annotations

import cv2
import numpy as np

PATCH = 16  # pixels a side: the face's layout (eyes, mouth, hair line), not its detail
MIN_SIDE = 8  # working pixels: a box smaller than this on the flow's image has no template
SEARCH = 0.25  # of the box's side, each way: a box a little off the face still shows it
SCALES = (0.8, 1.0, 1.25)  # and one a little larger or smaller than the face (the flow's scale drifts)


def template(gray: np.ndarray, s: float, box) -> tuple[np.ndarray, ...] | None:
    """The content of ``box`` (image pixels) on ``gray`` (the flow's image, at scale ``s``) as
    patches of zero mean and unit norm, PATCH a side times each of SCALES; None where the box is too
    small, not wholly in view (a face coming in at the edge: its visible part is not the face's
    layout) or flat (nothing to compare)."""
    h, w = gray.shape[:2]
    if not _in_view(box, s, w, h):
        return None
    crop = _area(gray, s, box, PATCH)
    if crop is None:
        return None
    out = [
        normalised(cv2.resize(crop, (round(PATCH * f),) * 2, interpolation=cv2.INTER_AREA)) for f in SCALES
    ]
    return None if any(p is None for p in out) else tuple(out)


def normalised(p: np.ndarray) -> np.ndarray | None:
    """``p`` (float32) less its mean, over its norm: its layout, whatever the exposure; None if flat."""
    p = p - p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 1e-3 * np.sqrt(p.size) else None


def likeness(template: tuple[np.ndarray, ...] | None, gray: np.ndarray, s: float, box) -> float | None:
    """The best correlation of ``template`` with the content around ``box`` on ``gray``: the box
    shifted up to SEARCH of its side each way, at each of SCALES, -1 to 1 (None without a template
    or where the box is not wholly in view: half a face is not like the whole one)."""
    h, w = gray.shape[:2]
    if template is None or not _in_view(box, s, w, h):
        return None
    reach = max(SCALES) * (0.5 + SEARCH)  # of the box's side, from its centre
    bw, bh = (float(box[2]) - float(box[0])) * s, (float(box[3]) - float(box[1])) * s
    centre = ((float(box[0]) + float(box[2])) / 2 * s, (float(box[1]) + float(box[3])) / 2 * s)
    if bw < MIN_SIDE or bh < MIN_SIDE:
        return None
    size = (max(1, round(2 * reach * bw)), max(1, round(2 * reach * bh)))
    side = round(PATCH * 2 * reach)  # the box is PATCH a side here; past the image's edge, its edge
    around = cv2.resize(cv2.getRectSubPix(gray, size, centre), (side, side), interpolation=cv2.INTER_AREA)
    around = around.astype(np.float32)
    c = side // 2
    best = None
    for t in template:  # the box at each scale, shifted up to SEARCH of its side each way
        half = round(t.shape[0] * (0.5 + SEARCH))
        r = float(
            cv2.matchTemplate(around[c - half : c + half, c - half : c + half], t, cv2.TM_CCOEFF_NORMED).max()
        )
        best = r if best is None else max(best, r)
    return best


def _area(gray: np.ndarray, s: float, box, side: int) -> np.ndarray | None:
    """The part of ``box`` (image pixels) inside ``gray``, resized as the whole box would be to
    ``side`` x ``side`` (float32); None where the box is too small or that part is under PATCH a side."""
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = (float(v) * s for v in box)
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        return None
    c0, r0 = max(0, int(x0)), max(0, int(y0))
    c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    cw, ch = round((c1 - c0) * side / (x1 - x0)), round((r1 - r0) * side / (y1 - y0))
    if cw < PATCH or ch < PATCH:
        return None
    return cv2.resize(gray[r0:r1, c0:c1], (cw, ch), interpolation=cv2.INTER_AREA).astype(np.float32)


def _in_view(box, s: float, w: int, h: int) -> bool:
    """Whether ``box`` (image pixels) lies within a working image of w x h (a pixel's slack)."""
    x0, y0, x1, y1 = (float(v) * s for v in box)
    return x0 >= -1 and y0 >= -1 and x1 <= w + 1 and y1 <= h + 1
