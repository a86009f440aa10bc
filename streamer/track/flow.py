"""Boxes follow the image: sparse Lucas-Kanade optical flow on a grid of points inside each box.

Median-flow style (Kalal et al. 2010): points tracked forward and back, the ones whose
round trip lands far from where they started are dropped; the box moves by the median
shift of the rest and scales by the median ratio of their pairwise distances. A box whose
points mostly fail gets ``None`` and its track falls back on its motion model.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.track.matching import XYXY

GRID = 5  # GRID x GRID points per box
MIN_POINTS = 5  # fewer good points than this: the flow of that box failed
MAX_FB_ERROR = 1.0  # pixels (at working scale) a point may miss its start after a round trip
LEVELS = 3  # pyramid levels above the image, frame to frame
LK = dict(winSize=(9, 9), criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03))
# Carrying a detection over frames several apart (the frames kept between the one the detector saw
# and now, once a stream keeps fewer than it has shown): a face crossing a 1080p street at 10-15 px
# a frame moves 30-60 px between them, past what 3 levels of 9x9 windows find. Up to 5 levels and
# the box's own velocity as LK's starting point carried the 1080p street's fast faces 25 frames in
# steps of 3 to IoU 0.77 with their true boxes (3 levels, no guess: 0.17).
MAX_LEVELS = 5
# The flow runs on a reduced grey image: building its pyramids is most of the cost. Halve the
# image while its longer side stays >= MIN_SIDE and the smallest face stays >= MIN_FACE pixels.
# 40, not 20: following a 1080p street's 40-80 px faces at half scale halves the flow's cost there
# (30 faces: 2.8 ms a frame instead of 5.5) at the same planned recall (4 clips x 3 settings: 0.700
# against 0.698), but on the demo, live, the performer's fast-moving 40-80 px face followed at half
# of 640 px lost recall (0.90 against 0.92, six runs each): the real clip decides.
MIN_SIDE = 320
MIN_FACE = 40


def work_scale(shape: tuple[int, ...], smallest_face: float) -> float:
    """1, 1/2, 1/4, ...: few distinct values, so consecutive frames usually share one."""
    s = 1.0
    while max(shape[:2]) * s / 2 >= MIN_SIDE and smallest_face * s / 2 >= MIN_FACE:
        s /= 2
    return s


def to_gray(rgb: np.ndarray, s: float = 1.0) -> np.ndarray:
    """The grey image at scale ``s`` (working pixels per image pixel)."""
    if s < 1.0:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# where the points sit inside a box, as fractions of its size: the inner part, as the box's edges
# are often background, which does not move with the face
_U = np.stack(np.meshgrid(np.linspace(0.15, 0.85, GRID), np.linspace(0.15, 0.85, GRID)), -1).reshape(-1, 2)
_I, _J = np.triu_indices(GRID * GRID, 1)


def _median_rows(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of each row's valid entries (NaN where none); np.nanmedian is 5x slower here."""
    a = np.sort(np.where(valid, a, np.inf), axis=-1)
    n = valid.sum(-1)
    lo = np.take_along_axis(a, np.maximum(n - 1, 0)[..., None] // 2, -1)[..., 0]
    hi = np.take_along_axis(a, (n // 2)[..., None], -1)[..., 0] if a.shape[-1] else lo
    return np.where(n > 0, (lo + np.where(n % 2 == 1, lo, hi)) / 2, np.nan)


def _grid(boxes: Sequence[XYXY], s: float) -> np.ndarray:
    """Each box's points (working pixels), (B, P, 2) float32."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * s
    return (b[:, None, :2] + _U[None] * (b[:, None, 2:] - b[:, None, :2])).astype(np.float32)


def _lk(
    prev: np.ndarray, cur: np.ndarray, pts: np.ndarray, guess: np.ndarray | None = None, levels: int = LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """Points (..., 2) tracked forward and back: where they went, and each one's round-trip error
    (inf where it failed: lost either way, or back further than MAX_FB_ERROR from its start).
    ``guess``: where each point is expected to have moved by (..., 2), LK's starting point;
    ``levels``: the pyramid's levels above the image."""
    flat = np.ascontiguousarray(pts.reshape(-1, 2))
    lk = dict(LK, maxLevel=levels)
    if guess is None:
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, flat, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, fwd, None, **lk)
    else:
        g = np.broadcast_to(guess, pts.shape).reshape(-1, 2).astype(np.float32)
        init = cv2.OPTFLOW_USE_INITIAL_FLOW
        fwd, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, flat, flat + g, flags=init, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, fwd, fwd - g, flags=init, **lk)
    fb = np.linalg.norm(back - flat, axis=1)
    good = (st1[:, 0] == 1) & (st2[:, 0] == 1) & (fb < MAX_FB_ERROR)
    return fwd.reshape(pts.shape), np.where(good, fb, np.inf).reshape(pts.shape[:-1])


def _moves(
    pts: np.ndarray, p1: np.ndarray, fb: np.ndarray, s: float
) -> list[tuple[float, float, float] | None]:
    """Per box: (dx, dy, scale) in image pixels from its points' start ``pts`` and end ``p1`` (B, P, 2)
    and round-trip errors ``fb`` (B, P; inf: failed), or None where too few points held. All boxes'
    statistics at once, each median over the arrays of every box (the Python per box cost more than
    the flow; at 12 faces this takes 0.35 ms, a third of the two LK calls)."""
    good = np.isfinite(fb)
    # keep the better half by round-trip error where that leaves enough points
    med = _median_rows(fb, good)
    better = good & (fb <= np.nan_to_num(med, nan=np.inf)[:, None])
    use = np.where((better.sum(1) >= MIN_POINTS)[:, None], better, good)
    d = np.moveaxis(p1 - pts, 2, 1)  # (B, 2, P): both coordinates' medians in one call
    shift = _median_rows(d, np.repeat(use[:, None, :], 2, axis=1)) / s  # (B, 2)
    d0, d1 = _pair_distances(pts), _pair_distances(p1)
    pair_ok = use[:, _I] & use[:, _J] & (d0 > 2.0)
    scale = _median_rows(d1 / np.maximum(d0, 1e-6), pair_ok)
    scale = np.where(np.isnan(scale), 1.0, np.clip(scale, 0.8, 1.25))
    rows = np.column_stack([shift, scale]).tolist()
    held = (use.sum(1) >= MIN_POINTS).tolist()
    return [(r[0], r[1], r[2]) if ok else None for r, ok in zip(rows, held, strict=True)]


def _pair_distances(p: np.ndarray) -> np.ndarray:
    """(B, P, 2) points -> (B, P*(P-1)/2) distances of every pair within a box."""
    x, y = p[..., 0], p[..., 1]
    return np.hypot(x[:, _I] - x[:, _J], y[:, _I] - y[:, _J])


def follow(
    prev: np.ndarray, cur: np.ndarray, s: float, boxes: Sequence[XYXY]
) -> list[tuple[float, float, float] | None]:
    """For each box (image pixels): (dx, dy, scale) from ``prev`` to ``cur`` (grey, at scale ``s``),
    or None where the flow failed. All boxes' points go through one LK call."""
    if not boxes:
        return []
    pts = _grid(boxes, s)
    p1, fb = _lk(prev, cur, pts)
    return _moves(pts, p1, fb, s)


NEAR = 2.0  # follow_near: the crop reaches this many box widths beyond each side of a box
CROP_SHARE = 0.5  # follow_boxes: crops while their pixels are under this share of the image's


def follow_near(
    prev: np.ndarray,
    cur: np.ndarray,
    s: float,
    boxes: Sequence[XYXY],
    guess: Sequence[tuple[float, float]] | None = None,
    frames: int = 1,
) -> list[tuple[float, float, float] | None]:
    """``follow`` for a few boxes on a big image: each box's flow on a crop around it (LK's gradients
    and pyramids cost in proportion to the pixels they span). ``guess``: each box's expected shift
    (image pixels); ``frames``: how many frames apart ``prev`` and ``cur`` are (a level more per
    doubling, up to MAX_LEVELS)."""
    if not boxes:
        return []
    h, w = prev.shape[:2]
    pts = _grid(boxes, s)
    p1 = pts.copy()
    fb = np.full(pts.shape[:2], np.inf)
    levels = min(MAX_LEVELS, LEVELS + max(0, frames - 1).bit_length())
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        g = np.float32(guess[k]) * s if guess is not None else None
        m = NEAR * max(x1 - x0, y1 - y0, 8.0) + (float(np.abs(g).max()) / s if g is not None else 0.0)
        c0 = max(0, int((x0 - m) * s)), max(0, int((y0 - m) * s))
        c1 = min(w, int((x1 + m) * s) + 1), min(h, int((y1 + m) * s) + 1)
        if c1[0] - c0[0] < 16 or c1[1] - c0[1] < 16:
            continue  # its points stay failed
        crop = (slice(c0[1], c1[1]), slice(c0[0], c1[0]))
        at = np.float32(c0)
        moved, fb[k] = _lk(prev[crop], cur[crop], pts[k] - at, g, levels)
        p1[k] = moved + at
    return _moves(pts, p1, fb, s)


def follow_boxes(
    prev: np.ndarray, cur: np.ndarray, s: float, boxes: Sequence[XYXY]
) -> list[tuple[float, float, float] | None]:
    """``follow_near`` while the crops cover under ``CROP_SHARE`` of the image (a 1080p frame with a
    few small faces), ``follow`` on the whole image otherwise."""
    h, w = prev.shape[:2]
    crops = sum(((1 + 2 * NEAR) * max(x1 - x0, y1 - y0, 8.0) * s) ** 2 for x0, y0, x1, y1 in boxes)
    if crops < CROP_SHARE * w * h:
        return follow_near(prev, cur, s, boxes)
    return follow(prev, cur, s, boxes)
